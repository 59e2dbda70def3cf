/*
 * telemetry: every 5 s sends {"temperature":21.5,"seq":N} to the cloud through the runtime's own
 * authenticated connection (rampart_telemetry_send), and logs each cloud-to-device message it receives.
 *
 * Capabilities: DeviceAuthentication (the nil UUID: the device's own tenant).
 */
#include "rampart.h"
#include "rampart_util.h"

#define SEND_TIMER 1
#define SEND_PERIOD_MS 5000

static int64_t seq;

RAMPART_APP_START {
    ru_log(RAMPART_LOG_INFO, "telemetry starting: a reading every 5 s");
    int32_t result = rampart_timer_start(SEND_TIMER, SEND_PERIOD_MS, SEND_PERIOD_MS);
    if (result < 0) {
        ru_log_result(RAMPART_LOG_ERROR, "telemetry: timer_start failed", result);
        rampart_exit(1);
    }
}

RAMPART_EXPORT("app_on_timer") void app_on_timer(int32_t id) {
    if (id != SEND_TIMER) return;
    seq++;
    char payload_storage[64];
    ru_text payload = ru_text_make(payload_storage, (int32_t)sizeof payload_storage);
    ru_append(&payload, "{\"temperature\":21.5,\"seq\":");
    ru_append_int(&payload, seq);
    ru_append(&payload, "}");
    int32_t result = rampart_telemetry_send(payload.data, payload.length);

    char line_storage[160];
    ru_text line = ru_text_make(line_storage, (int32_t)sizeof line_storage);
    if (result >= 0) {
        ru_append(&line, "telemetry sent: ");
        ru_append_bytes(&line, payload.data, payload.length);
        ru_log_text(RAMPART_LOG_INFO, &line);
    } else {
        ru_append(&line, "telemetry seq ");
        ru_append_int(&line, seq);
        ru_append(&line, " not sent: ");
        ru_append_result(&line, result);
        ru_log_text(RAMPART_LOG_WARN, &line);
    }
}

RAMPART_EXPORT("app_on_message") void app_on_message(int32_t kind, int32_t length) {
    char line_storage[1024];
    ru_text line = ru_text_make(line_storage, (int32_t)sizeof line_storage);
    if (kind != RAMPART_MESSAGE_CLOUD) {
        ru_append(&line, "telemetry: ignoring a message of kind ");
        ru_append_int(&line, kind);
        ru_log_text(RAMPART_LOG_INFO, &line);
        return;
    }
    static char message[960];
    int32_t read = rampart_message_read(message, (int32_t)sizeof message);
    if (read < 0) {
        ru_log_result(RAMPART_LOG_WARN, "telemetry: message_read failed", read);
        return;
    }
    ru_append(&line, "cloud message (");
    ru_append_int(&line, length);
    ru_append(&line, " bytes): ");
    for (int32_t i = 0; i < read; i++) {
        char c = message[i];
        /* Keep the log line one line: control characters become '.'. */
        message[i] = (c >= 0 && c < 0x20) || c == 0x7f ? '.' : c;
    }
    ru_append_bytes(&line, message, read);
    if (read < length) ru_append(&line, "...");
    ru_log_text(RAMPART_LOG_INFO, &line);
}
