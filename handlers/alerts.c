/* /alerts, /ack, /resolve, /subscribe, /unsubscribe, /mute, /rules and alarm messages. */
#include "internal.h"
