/* Plant alarms in the database (alarm.h). */
#include "alarm.h"
