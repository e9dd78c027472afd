/* Alert rules: compile, schedule, evaluate (alert.h). */
#include "alert.h"
