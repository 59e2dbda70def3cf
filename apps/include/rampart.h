/*
 * rampart.h: the host API of a Rampart app (docs/app-api.md).
 *
 * A Rampart app is a WebAssembly core module (wasm32) built from C with the Swift toolchain's clang
 * (scripts/build-apps adds stack and memory settings):
 *
 *   clang --target=wasm32 -O2 -nostdlib -fno-builtin -Wl,--no-entry -Wl,--export-dynamic \
 *         -Wl,--allow-undefined -I apps/include -o app.wasm app.c
 *
 * There is no libc. -fno-builtin keeps clang from turning loops into calls of strlen or memcpy, which
 * would become imports from module "env" that the runtime refuses. apps/include/rampart_util.h has
 * small helpers (string length, numbers to text, logging).
 *
 * Every function below is imported from the module "rampart". A call that needs a capability checks
 * the app's app_manifest.json before it does anything: one the manifest does not grant returns
 * RAMPART_EPERM (logging, time, random, timers and messages need none). Every pointer and length is checked against the app's linear memory; a call that
 * passes memory the app does not own ends the app with an error report (class hostCallFault).
 *
 * The app model is event driven. The runtime calls the app's exports:
 *   app_start()                   once, required;
 *   app_on_timer(id)              when a timer started with rampart_timer_start fires;
 *   app_on_message(kind, length)  when a message is waiting: read it with rampart_message_read;
 *   app_on_event(event, arg)      for a system event (RAMPART_EVENT_*).
 * Each call runs on a fuel budget (about one unit per WebAssembly instruction); an app that spends
 * it is ended with an error report (class fuelExhausted). An app ends when it calls rampart_exit,
 * traps, or is stopped; otherwise it waits for its next event.
 */
#ifndef RAMPART_H
#define RAMPART_H

#include <stdint.h>

#define RAMPART_IMPORT(name) __attribute__((import_module("rampart"), import_name(name)))
#define RAMPART_EXPORT(name) __attribute__((export_name(name)))

/* Results. Calls return a value >= 0 on success, or one of these. */
#define RAMPART_EPERM      (-1)  /* the manifest does not grant it, or the firewall denies it */
#define RAMPART_EINVAL     (-2)  /* an argument is out of range or malformed */
#define RAMPART_ENOSPC     (-3)  /* a quota is full (storage, handles, timers, queue) */
#define RAMPART_EAGAIN     (-4)  /* nothing yet: no data, no connection, no message */
#define RAMPART_ECONN      (-5)  /* the connection failed, was refused or was closed by the peer */
#define RAMPART_ENOTFOUND  (-6)  /* no such handle, timer, pin, peripheral or app */
#define RAMPART_ETIMEDOUT  (-7)  /* the operation did not finish in time */
#define RAMPART_EUNAVAIL   (-8)  /* not available now: no device certificate or gateway, a port in use */

/* Every call moves at most 64 KiB, and blocks for at most 10 s whatever timeout_ms says (a send at most
 * 1 s). A receive or accept that times out returns RAMPART_EAGAIN; a connect, RAMPART_ETIMEDOUT. */

/* Logging: one line, at most 1024 bytes (longer lines are cut). At most 100 lines a second are
 * kept; the rest are counted and dropped. */
#define RAMPART_LOG_DEBUG 0
#define RAMPART_LOG_INFO  1
#define RAMPART_LOG_WARN  2
#define RAMPART_LOG_ERROR 3
RAMPART_IMPORT("log") int32_t rampart_log(int32_t level, const char *text, int32_t length);

/* Time: wall clock and monotonic, in milliseconds. */
RAMPART_IMPORT("time_ms") int64_t rampart_time_ms(void);
RAMPART_IMPORT("monotonic_ms") int64_t rampart_monotonic_ms(void);

/* Fills buffer with up to 4096 cryptographically random bytes. Returns length. */
RAMPART_IMPORT("random") int32_t rampart_random(void *buffer, int32_t length);

/* Ends the app. A non-zero code is an error report (class appExit) and a restart with backoff. */
RAMPART_IMPORT("exit") __attribute__((noreturn)) void rampart_exit(int32_t code);

/* Timers: id is the app's own number (0..63). A period of 0 fires once. Delays 1 ms .. 24 h. */
RAMPART_IMPORT("timer_start") int32_t rampart_timer_start(int32_t id, int32_t delay_ms, int32_t period_ms);
RAMPART_IMPORT("timer_cancel") int32_t rampart_timer_cancel(int32_t id);

/* Mutable storage (MutableStorage.SizeKB): one file per app, that survives restarts and updates.
 * Writes beyond the quota return RAMPART_ENOSPC and change nothing. */
RAMPART_IMPORT("storage_read") int32_t rampart_storage_read(int32_t offset, void *buffer, int32_t length);
RAMPART_IMPORT("storage_write") int32_t rampart_storage_write(int32_t offset, const void *data, int32_t length);
RAMPART_IMPORT("storage_size") int32_t rampart_storage_size(void);
RAMPART_IMPORT("storage_truncate") int32_t rampart_storage_truncate(int32_t size);

/* Peripherals, by number, as the manifest lists them (Gpio, Uart, I2cMaster, SpiMaster, Adc, Pwm). */
RAMPART_IMPORT("gpio_set") int32_t rampart_gpio_set(int32_t pin, int32_t value);
RAMPART_IMPORT("gpio_get") int32_t rampart_gpio_get(int32_t pin);
RAMPART_IMPORT("uart_write") int32_t rampart_uart_write(int32_t uart, const void *data, int32_t length);
RAMPART_IMPORT("uart_read") int32_t rampart_uart_read(int32_t uart, void *buffer, int32_t length);
RAMPART_IMPORT("i2c_transfer") int32_t rampart_i2c_transfer(int32_t bus, int32_t address, const void *write,
    int32_t write_length, void *read, int32_t read_length);
RAMPART_IMPORT("spi_transfer") int32_t rampart_spi_transfer(int32_t bus, const void *write, int32_t write_length,
    void *read, int32_t read_length);
RAMPART_IMPORT("adc_read") int32_t rampart_adc_read(int32_t controller, int32_t channel);
RAMPART_IMPORT("pwm_set") int32_t rampart_pwm_set(int32_t controller, int32_t channel, int32_t period_us,
    int32_t duty_us);

/* Outbound TCP, only to a host named in AllowedConnections (a DNS name or an IP address, matched
 * exactly; a name is resolved by the runtime). Returns a handle. Connects within timeout_ms. */
RAMPART_IMPORT("tcp_connect") int32_t rampart_tcp_connect(const char *host, int32_t host_length, int32_t port,
    int32_t timeout_ms);
/* TLS 1.2+ with the device certificate as client certificate (the key never enters the app): needs
 * DeviceAuthentication too. The server is verified against the system's trust store and the runtime's
 * service CA, by name (with SNI) or by IP address. Returns a handle for rampart_socket_send/recv/close;
 * RAMPART_EUNAVAIL before the device has a certificate (never plain TCP instead), RAMPART_ECONN when the
 * handshake fails. The handshake shares timeout_ms with the connection. */
RAMPART_IMPORT("tls_connect") int32_t rampart_tls_connect(const char *host, int32_t host_length, int32_t port,
    int32_t timeout_ms);
/* Listening, only on AllowedTcpServerPorts. Returns a listener handle. */
RAMPART_IMPORT("tcp_listen") int32_t rampart_tcp_listen(int32_t port);
/* Accepts a connection within timeout_ms (0: only if one is waiting). Returns a handle. */
RAMPART_IMPORT("tcp_accept") int32_t rampart_tcp_accept(int32_t listener, int32_t timeout_ms);
/* UDP, bound only to AllowedUdpServerPorts. A send replies to the sender of the last datagram received
 * (RAMPART_EINVAL before any arrived). */
RAMPART_IMPORT("udp_bind") int32_t rampart_udp_bind(int32_t port);
/* Sends up to length bytes; returns how many were sent. */
RAMPART_IMPORT("socket_send") int32_t rampart_socket_send(int32_t handle, const void *data, int32_t length);
/* Receives up to length bytes within timeout_ms; 0 means the peer closed the connection. */
RAMPART_IMPORT("socket_recv") int32_t rampart_socket_recv(int32_t handle, void *buffer, int32_t length,
    int32_t timeout_ms);
RAMPART_IMPORT("socket_close") int32_t rampart_socket_close(int32_t handle);

/* Telemetry to the cloud (DeviceAuthentication) through the runtime's own connection, authenticated with
 * the device certificate: queued at once (RAMPART_ENOSPC when 256 wait), stored on the server with the
 * device's telemetry and the app's component ID. RAMPART_EUNAVAIL before the device has attested. */
RAMPART_IMPORT("telemetry_send") int32_t rampart_telemetry_send(const void *payload, int32_t length);

/* App-to-app messages (AllowedApplicationConnections, granted by both apps). component_id is the other
 * app's ComponentId as text. At most 4096 bytes; at most 16 messages wait for an app. */
RAMPART_IMPORT("app_send") int32_t rampart_app_send(const char *component_id, int32_t component_id_length,
    const void *data, int32_t length);

/* Messages: app_on_message(kind, length) announces one. Read it during that call: message_read copies up
 * to length bytes and returns how many; the message is gone when app_on_message returns. Cloud messages
 * reach only apps with DeviceAuthentication. */
#define RAMPART_MESSAGE_APP   1  /* from another app: rampart_message_sender gives its component ID */
#define RAMPART_MESSAGE_CLOUD 2  /* cloud-to-device ('rampart device message send --property componentId=C'):
                                  * to app C, when its DeviceAuthentication allows the device's tenant */
RAMPART_IMPORT("message_read") int32_t rampart_message_read(void *buffer, int32_t length);
RAMPART_IMPORT("message_sender") int32_t rampart_message_sender(char *buffer, int32_t length);

/* System events (SystemEventNotifications): app_on_event(event, arg). */
#define RAMPART_EVENT_UPDATE_PENDING 1  /* arg: seconds until the update downloads and installs; defer it now if need be */
#define RAMPART_EVENT_SHUTDOWN       2  /* the runtime is stopping the app; arg: 0 */
/* Defers updates (apps and system software, but not a critical runtime) for 1..1440 minutes from now
 * (SoftwareUpdateDeferral). Deferrals chain, but end at most 24 h after the first one still in force. */
RAMPART_IMPORT("update_defer") int32_t rampart_update_defer(int32_t minutes);

/* The cellular link as the router control channel last reported it (NetworkConfig). Informational: it comes
 * from a router the device does not trust. Returns sizeof(rampart_link_status_t), or RAMPART_EUNAVAIL when the
 * device has no router channel. */
typedef struct {
    int32_t known;         /* 1 once the router reported anything; 0: the other fields are unknown */
    int32_t signal_dbm;    /* e.g. -73; 0 when unknown */
    int32_t registration;  /* 27.007 stat: 0 not registered, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming; -1 unknown */
    int32_t radio;         /* 0 unknown, 1 GSM, 2 UMTS, 3 LTE, 4 NB-IoT, 5 NR */
} rampart_link_status_t;
RAMPART_IMPORT("link_status") int32_t rampart_link_status(rampart_link_status_t *status);

/* Power controls (PowerControls: ["ForceReboot"]). The runtime restarts in an orderly way: every service
 * stops gracefully (apps get RAMPART_EVENT_SHUTDOWN), then the runtime starts again from its active slot. */
RAMPART_IMPORT("reboot_request") int32_t rampart_reboot_request(void);

/* The app's own entry points. */
#define RAMPART_APP_START RAMPART_EXPORT("app_start") void app_start(void)

#endif /* RAMPART_H */
