/*
 * blink: toggles GPIO pin 8 every 500 ms and logs "blink on" / "blink off". It counts ticks in its
 * mutable storage (a 4-byte little-endian counter at offset 0), so the count survives restarts and
 * updates.
 *
 * Capabilities: Gpio [8], MutableStorage {"SizeKB": 1}.
 */
#include "rampart.h"
#include "rampart_util.h"

#define LED_PIN 8
#define BLINK_TIMER 1
#define BLINK_PERIOD_MS 500

static uint32_t ticks;
static int32_t led_on;

RAMPART_APP_START {
    uint32_t stored = 0;
    int32_t read = rampart_storage_read(0, &stored, (int32_t)sizeof stored);
    if (read == (int32_t)sizeof stored) {
        ticks = stored;
    } else if (read < 0) {
        ru_log_result(RAMPART_LOG_WARN, "blink: cannot read the tick counter, starting from 0", read);
    }

    char storage[80];
    ru_text text = ru_text_make(storage, (int32_t)sizeof storage);
    ru_append(&text, "blink starting on pin 8, ");
    ru_append_int(&text, ticks);
    ru_append(&text, " ticks so far");
    ru_log_text(RAMPART_LOG_INFO, &text);

    int32_t result = rampart_gpio_set(LED_PIN, 0);
    if (result < 0) ru_log_result(RAMPART_LOG_ERROR, "blink: gpio_set(8) failed", result);

    result = rampart_timer_start(BLINK_TIMER, BLINK_PERIOD_MS, BLINK_PERIOD_MS);
    if (result < 0) {
        ru_log_result(RAMPART_LOG_ERROR, "blink: timer_start failed", result);
        rampart_exit(1);
    }
}

RAMPART_EXPORT("app_on_timer") void app_on_timer(int32_t id) {
    if (id != BLINK_TIMER) return;
    led_on = !led_on;
    int32_t result = rampart_gpio_set(LED_PIN, led_on);
    if (result < 0) ru_log_result(RAMPART_LOG_ERROR, "blink: gpio_set(8) failed", result);
    ru_log(RAMPART_LOG_INFO, led_on ? "blink on" : "blink off");

    ticks++;
    result = rampart_storage_write(0, &ticks, (int32_t)sizeof ticks);
    if (result != (int32_t)sizeof ticks) {
        ru_log_result(RAMPART_LOG_WARN, "blink: cannot store the tick counter", result);
    }
}
