/* Topics and telemetry payloads (alert.h). */
#include "alert.h"
