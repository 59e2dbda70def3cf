/*
 * crasher: logs "about to crash", then traps one second later. The runtime files the trap as an error
 * report (class AppTrap) and restarts the app with backoff; a crash this regular becomes a restart loop.
 *
 * Capabilities: none.
 */
#include "rampart.h"
#include "rampart_util.h"

#define CRASH_TIMER 1

RAMPART_APP_START {
    ru_log(RAMPART_LOG_INFO, "about to crash");
    int32_t result = rampart_timer_start(CRASH_TIMER, 1000, 0);
    if (result < 0) {
        ru_log_result(RAMPART_LOG_ERROR, "crasher: timer_start failed", result);
        rampart_exit(1);
    }
}

RAMPART_EXPORT("app_on_timer") void app_on_timer(int32_t id) {
    (void)id;
    ru_log(RAMPART_LOG_ERROR, "crashing now");
    __builtin_trap();
}
