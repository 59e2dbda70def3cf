/*
 * rampart_util.h: small helpers for Rampart apps, which have no libc (-nostdlib). Static inline
 * functions only, so an app pays only for what it uses and imports nothing beyond rampart.h.
 *
 * Apps have no libc, and the runtime refuses a module that imports anything but the functions of
 * rampart.h. Yet clang may turn a plain loop into a call of strlen, memcpy or memset, which -nostdlib
 * with --allow-undefined leaves as an import from module "env". So build with -fno-builtin (as
 * scripts/build-apps does), and the helpers here are marked no_builtin so that they stay calls-free
 * even without it. (memcpy and memset of known size become memory.copy and memory.fill: clang's wasm32
 * default CPU has bulk memory.)
 */
#ifndef RAMPART_UTIL_H
#define RAMPART_UTIL_H

#include <stdint.h>
#include "rampart.h"

/* Every helper: inline, and never turned into a libc call. */
#define RU_HELPER static inline __attribute__((no_builtin))

/* The length of a NUL-terminated string. */
RU_HELPER int32_t ru_strlen(const char *text) {
    int32_t length = 0;
    while (text[length] != '\0') length++;
    return length;
}

/* Whether the first length bytes of a and b are equal. */
RU_HELPER int ru_memeq(const void *a, const void *b, int32_t length) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (int32_t i = 0; i < length; i++) {
        if (x[i] != y[i]) return 0;
    }
    return 1;
}

/* Writes value in decimal to out (at least 21 bytes), without a NUL. Returns the number of digits. */
RU_HELPER int32_t ru_itoa(int64_t value, char *out) {
    char digits[20];
    int32_t count = 0, length = 0;
    /* Work with the negative value so that INT64_MIN needs no special case. */
    int64_t rest = value < 0 ? value : -value;
    do {
        digits[count++] = (char)('0' - (rest % 10));
        rest /= 10;
    } while (rest != 0);
    if (value < 0) out[length++] = '-';
    while (count > 0) out[length++] = digits[--count];
    return length;
}

/* The name of a RAMPART_E* result, for logs. */
RU_HELPER const char *ru_error_name(int32_t result) {
    switch (result) {
    case RAMPART_EPERM: return "EPERM";
    case RAMPART_EINVAL: return "EINVAL";
    case RAMPART_ENOSPC: return "ENOSPC";
    case RAMPART_EAGAIN: return "EAGAIN";
    case RAMPART_ECONN: return "ECONN";
    case RAMPART_ENOTFOUND: return "ENOTFOUND";
    case RAMPART_ETIMEDOUT: return "ETIMEDOUT";
    case RAMPART_EUNAVAIL: return "EUNAVAIL";
    default: return result >= 0 ? "OK" : "unknown error";
    }
}

/* A text buffer that appends without overflowing: what does not fit is cut. */
typedef struct {
    char *data;
    int32_t length;
    int32_t capacity;
} ru_text;

RU_HELPER ru_text ru_text_make(char *storage, int32_t capacity) {
    ru_text text = {storage, 0, capacity};
    return text;
}

RU_HELPER void ru_append_bytes(ru_text *text, const char *bytes, int32_t length) {
    for (int32_t i = 0; i < length && text->length < text->capacity; i++) text->data[text->length++] = bytes[i];
}

RU_HELPER void ru_append(ru_text *text, const char *string) { ru_append_bytes(text, string, ru_strlen(string)); }

RU_HELPER void ru_append_int(ru_text *text, int64_t value) {
    char digits[21];
    ru_append_bytes(text, digits, ru_itoa(value, digits));
}

/* Appends a result code with its name, e.g. "-1 (EPERM)". */
RU_HELPER void ru_append_result(ru_text *text, int32_t result) {
    ru_append_int(text, result);
    ru_append(text, " (");
    ru_append(text, ru_error_name(result));
    ru_append(text, ")");
}

/* Logs a NUL-terminated string. */
RU_HELPER int32_t ru_log(int32_t level, const char *string) { return rampart_log(level, string, ru_strlen(string)); }

/* Logs what a ru_text holds. */
RU_HELPER int32_t ru_log_text(int32_t level, const ru_text *text) {
    return rampart_log(level, text->data, text->length);
}

/* Logs "<what>: <result> (<NAME>)", e.g. "gpio_set failed: -1 (EPERM)". */
RU_HELPER int32_t ru_log_result(int32_t level, const char *what, int32_t result) {
    char storage[160];
    ru_text text = ru_text_make(storage, (int32_t)sizeof storage);
    ru_append(&text, what);
    ru_append(&text, ": ");
    ru_append_result(&text, result);
    return ru_log_text(level, &text);
}

#endif /* RAMPART_UTIL_H */
