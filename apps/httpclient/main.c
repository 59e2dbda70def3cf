/*
 * httpclient: fetches http://127.0.0.1:18080/ once, logs the response's status line, and exits with
 * code 0 on a 200 and 2 otherwise (a refused or failed connection included). A connection to a host
 * that AllowedConnections does not name fails with RAMPART_EPERM: the firewall.
 *
 * Capabilities: AllowedConnections ["127.0.0.1"].
 */
#include "rampart.h"
#include "rampart_util.h"

#define HOST "127.0.0.1"
#define PORT 18080
#define TIMEOUT_MS 2000

static const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
/* The start of the response: enough for the status line. */
static char head[512];

/* Logs what failed and ends the app with code 2. rampart_exit does not return. */
__attribute__((noreturn)) static void fail(const char *what, int32_t result) {
    ru_log_result(RAMPART_LOG_ERROR, what, result);
    rampart_exit(2);
    __builtin_unreachable();
}

RAMPART_APP_START {
    ru_log(RAMPART_LOG_INFO, "httpclient: GET http://127.0.0.1:18080/");
    int32_t handle = rampart_tcp_connect(HOST, (int32_t)sizeof HOST - 1, PORT, TIMEOUT_MS);
    if (handle == RAMPART_EPERM) fail("httpclient: connect to 127.0.0.1:18080 denied by the firewall", handle);
    if (handle < 0) fail("httpclient: connect to 127.0.0.1:18080 failed", handle);

    int32_t sent = 0, total = (int32_t)sizeof request - 1;
    while (sent < total) {
        int32_t result = rampart_socket_send(handle, request + sent, total - sent);
        if (result <= 0) fail("httpclient: send failed", result);
        sent += result;
    }

    /* Read until the server closes the connection (HTTP/1.0), keeping the first bytes. */
    int32_t kept = 0, received = 0;
    char chunk[1024];
    for (;;) {
        int32_t result = rampart_socket_recv(handle, chunk, (int32_t)sizeof chunk, TIMEOUT_MS);
        if (result == 0) break;
        if (result < 0) {
            ru_log_result(RAMPART_LOG_WARN, "httpclient: receive ended", result);
            break;
        }
        for (int32_t i = 0; i < result && kept < (int32_t)sizeof head; i++) head[kept++] = chunk[i];
        received += result;
    }
    rampart_socket_close(handle);

    int32_t line = 0;
    while (line < kept && head[line] != '\r' && head[line] != '\n') line++;

    /* "HTTP/1.x NNN reason" */
    int32_t status = -1;
    if (line >= 12 && ru_memeq(head, "HTTP/", 5) && head[8] == ' ') {
        status = 0;
        for (int32_t i = 9; i < 12; i++) {
            if (head[i] < '0' || head[i] > '9') { status = -1; break; }
            status = status * 10 + (head[i] - '0');
        }
    }

    char storage[600];
    ru_text text = ru_text_make(storage, (int32_t)sizeof storage);
    if (status < 0) {
        ru_append(&text, "httpclient: no HTTP status line in ");
        ru_append_int(&text, received);
        ru_append(&text, " bytes");
        ru_log_text(RAMPART_LOG_ERROR, &text);
        rampart_exit(2);
        return;
    }
    ru_append(&text, "httpclient: ");
    ru_append_bytes(&text, head, line);
    ru_append(&text, " (");
    ru_append_int(&text, received);
    ru_append(&text, " bytes)");
    ru_log_text(status == 200 ? RAMPART_LOG_INFO : RAMPART_LOG_ERROR, &text);
    rampart_exit(status == 200 ? 0 : 2);
}
