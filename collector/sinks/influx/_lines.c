/* The hot loop of influx_lines.LineEncoder, in C: one line-protocol line per record.
 *
 * Only the common case is handled here: a record whose fields are plain str / int / float /
 * bool values and whose timestamp is an aware datetime. Everything that needs a decision
 * (series heads, escaped field keys, quoted text values, and their caches) is asked of the
 * Python encoder, which keeps the caches; a record this loop does not handle is encoded
 * whole by the encoder's own Python code. The two must give the same lines (tested).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int ascii;
} Buffer;

static PyObject *s_dict, *s_kind, *s_value, *s_account_id, *s_device_id, *s_model, *s_firmware,
    *s_fields, *s_observed_at, *s_heads, *s_keys, *s_texts, *s_head_for, *s_field_key, *s_field_text,
    *s_py_line, *s_utcoffset;

static int put(Buffer *b, const char *text, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = (b->len + n) * 2;
        char *grown = PyMem_Realloc(b->data, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, text, (size_t)n);
    b->len += n;
    return 0;
}

/* A decimal integer, then `suffix` (snprintf's format parsing costs more than the digits). */
static int put_integer(Buffer *b, long long number, char suffix) {
    char digits[24];
    char *end = digits + sizeof digits, *at = end;
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
    if (suffix) *--at = suffix;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0) *--at = '-';
    return put(b, at, end - at);
}

static const double POWERS_OF_TEN[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

/* repr() of a float that is a decimal of at most 8 places (most telemetry: 4.12, 0.5, 37.0)
 * without the shortest-digits search of PyOS_double_to_string, which costs more than the
 * rest of a line. The fewest places k whose m = round(|value| * 10^k) gives back the value
 * (m / 10^k, an exact integer over an exact power divided with one rounding, equals it)
 * are repr's digits: with m < 2^52 no other integer at k rounds to the value, and fewer
 * places would have been found first. repr() writes fixed notation from 1e-4 to 1e16.
 * 1: written; 0: not such a float (the caller falls back to repr's algorithm). */
static int put_short_float(Buffer *b, double value) {
    double magnitude = fabs(value);
    if (!(magnitude == 0.0 || (magnitude >= 1e-4 && magnitude < 1e15))) return 0; /* NaN too */
    for (int places = 0; places <= 8; places++) {
        double scaled = magnitude * POWERS_OF_TEN[places];
        if (scaled >= 4503599627370496.0) return 0; /* 2^52 */
        double m = nearbyint(scaled);
        if (m / POWERS_OF_TEN[places] != magnitude) continue;
        unsigned long long digits = (unsigned long long)m, unit = (unsigned long long)POWERS_OF_TEN[places];
        char text[48];
        char *end = text + sizeof text, *at = end;
        unsigned long long fraction = digits % unit, whole = digits / unit;
        if (places == 0) *--at = '0';
        for (int i = 0; i < places; i++) {
            *--at = (char)('0' + fraction % 10);
            fraction /= 10;
        }
        *--at = '.';
        do {
            *--at = (char)('0' + whole % 10);
            whole /= 10;
        } while (whole);
        if (signbit(value)) *--at = '-';
        return put(b, at, end - at) ? -1 : 1;
    }
    return 0;
}

/* A str made by the Python encoder (already safe for UTF-8). */
static int put_str(Buffer *b, PyObject *text) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL) return -1;
    if (!PyUnicode_IS_ASCII(text)) b->ascii = 0;
    return put(b, utf8, n);
}

/* cache[key], or encoder.<method>(key), which fills the cache. New reference. */
static PyObject *cached(PyObject *cache, PyObject *key, PyObject *encoder, PyObject *method) {
    PyObject *hit = PyDict_GetItemWithError(cache, key);
    if (hit != NULL) {
        Py_INCREF(hit);
        return hit;
    }
    if (PyErr_Occurred()) return NULL;
    PyObject *made = PyObject_CallMethodOneArg(encoder, method, key);
    if (made != NULL && !PyUnicode_Check(made)) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "the line encoder's cache must hold str");
        return NULL;
    }
    return made;
}

/* Days from 1970-01-01 to a proleptic Gregorian date. */
static long long days_since_epoch(long long year, int month, int day) {
    year -= month <= 2;
    long long era = (year >= 0 ? year : year - 399) / 400;
    long long year_of_era = year - era * 400;
    long long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* Nanoseconds since the epoch of an aware datetime. 1: done; 0: not handled here; -1: error. */
static int nanoseconds(PyObject *moment, long long *out) {
    if (!PyDateTime_CheckExact(moment)) return 0; /* a subclass may compute its own offset */
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(moment);
    long long offset_us = 0;
    if (tz == Py_None) return 0; /* naive: local time, the Python path decides */
    if (tz != PyDateTime_TimeZone_UTC) {
        PyObject *offset = PyObject_CallMethodNoArgs(moment, s_utcoffset);
        if (offset == NULL) return -1;
        if (!PyDelta_Check(offset)) {
            Py_DECREF(offset);
            return 0;
        }
        offset_us = ((long long)PyDateTime_DELTA_GET_DAYS(offset) * 86400 + PyDateTime_DELTA_GET_SECONDS(offset))
                        * 1000000LL
                    + PyDateTime_DELTA_GET_MICROSECONDS(offset);
        Py_DECREF(offset);
    }
    long long days = days_since_epoch(PyDateTime_GET_YEAR(moment), PyDateTime_GET_MONTH(moment),
                                      PyDateTime_GET_DAY(moment));
    long long seconds = days * 86400 + PyDateTime_DATE_GET_HOUR(moment) * 3600
                        + PyDateTime_DATE_GET_MINUTE(moment) * 60 + PyDateTime_DATE_GET_SECOND(moment);
    long long micros = seconds * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(moment) - offset_us;
    if (micros > 9000000000000000LL || micros < -9000000000000000LL) return 0; /* ns beyond int64 */
    *out = micros * 1000;
    return 1;
}

/* One value after its "key=". 1: done; 0: not handled here; -1: error. */
static int put_value(Buffer *b, PyObject *value, PyObject *texts, PyObject *encoder) {
    if (PyFloat_CheckExact(value)) {
        int done = put_short_float(b, PyFloat_AS_DOUBLE(value));
        if (done) return done;
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) return -1;
        int failed = put(b, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return failed ? -1 : 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) return 0;
        if (number == -1 && PyErr_Occurred()) return -1;
        return put_integer(b, number, 'i') ? -1 : 1;
    }
    if (PyBool_Check(value)) {
        return (value == Py_True ? put(b, "true", 4) : put(b, "false", 5)) ? -1 : 1;
    }
    if (PyUnicode_CheckExact(value)) {
        PyObject *text = cached(texts, value, encoder, s_field_text);
        if (text == NULL) return -1;
        int failed = put_str(b, text);
        Py_DECREF(text);
        return failed ? -1 : 1;
    }
    return 0;
}

/* The record's line into b, after the head. 1: done; 0: not handled here; -1: error.
 * Every object used while Python code may run (the callbacks) is held by a reference of
 * this function's own: a callback could change the record or its fields. */
static int put_fields(Buffer *b, PyObject *fields, PyObject *encoder, PyObject *keys, PyObject *texts) {
    Py_ssize_t pos = 0, size = PyDict_GET_SIZE(fields);
    PyObject *name, *value;
    int result = 1, first = 1;
    while (result == 1 && PyDict_Next(fields, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name)) return 0;
        if (!first && put(b, ",", 1)) return -1;
        first = 0;
        Py_INCREF(name);
        Py_INCREF(value);
        PyObject *key = cached(keys, name, encoder, s_field_key);
        result = key == NULL ? -1 : (put_str(b, key) ? -1 : 1);
        Py_XDECREF(key);
        if (result == 1) result = put_value(b, value, texts, encoder);
        Py_DECREF(name);
        Py_DECREF(value);
        if (result == 1 && PyDict_GET_SIZE(fields) != size) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return -1;
        }
    }
    return result;
}

enum { KIND, ACCOUNT, DEVICE, MODEL, FIRMWARE, FIELDS, MOMENT, PARTS };

/* A record's line into b. 1: done; 0: not handled here (b is to be discarded); -1: error. */
static int encode_one(Buffer *b, PyObject *record, PyObject *encoder, PyObject *heads, PyObject *keys,
                      PyObject *texts) {
    PyObject *const names[PARTS] = {s_kind, s_account_id, s_device_id, s_model, s_firmware, s_fields, s_observed_at};
    PyObject *part[PARTS] = {NULL};
    int result = 0;
    PyObject *attrs = PyObject_GetAttr(record, s_dict);
    if (attrs == NULL) {
        PyErr_Clear();
        return 0;
    }
    for (int i = 0; i < PARTS; i++) {
        part[i] = PyDict_GetItemWithError(attrs, names[i]);
        if (part[i] == NULL) {
            result = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        Py_INCREF(part[i]);
    }
    long long stamp;
    if (!PyDict_CheckExact(part[FIELDS])) goto done;
    result = nanoseconds(part[MOMENT], &stamp);
    if (result != 1) goto done;

    PyObject *kind_value = PyObject_GetAttr(part[KIND], s_value);
    if (kind_value == NULL) {
        PyErr_Clear();
        result = 0;
        goto done;
    }
    PyObject *series = PyTuple_Pack(5, kind_value, part[ACCOUNT], part[DEVICE], part[MODEL], part[FIRMWARE]);
    Py_DECREF(kind_value);
    PyObject *head = series == NULL ? NULL : cached(heads, series, encoder, s_head_for);
    Py_XDECREF(series);
    result = head == NULL ? -1 : (put_str(b, head) ? -1 : 1);
    Py_XDECREF(head);
    if (result == 1) result = put_fields(b, part[FIELDS], encoder, keys, texts);
    if (result == 1 && (put(b, " ", 1) || put_integer(b, stamp, 0))) result = -1;
done:
    for (int i = 0; i < PARTS; i++) Py_XDECREF(part[i]);
    Py_DECREF(attrs);
    return result;
}

static PyObject *make_line(Buffer *b) {
    if (!b->ascii) return PyUnicode_DecodeUTF8(b->data, b->len, "strict");
    PyObject *line = PyUnicode_New(b->len, 127);
    if (line != NULL) memcpy(PyUnicode_1BYTE_DATA(line), b->data, (size_t)b->len);
    return line;
}

/* The records' lines: a list of str (as_body 0), or one UTF-8 body, lines joined by "\n". */
static PyObject *encode_records(PyObject *encoder, PyObject *sequence, int as_body) {
    if (!PySequence_Check(sequence)) {
        PyErr_SetString(PyExc_TypeError, "records must be a sequence");
        return NULL;
    }
    /* A tuple of its own: the callbacks cannot shorten it under the loop. */
    PyObject *records = PySequence_Tuple(sequence);
    if (records == NULL) return NULL;
    PyObject *heads = NULL, *keys = NULL, *texts = NULL, *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(records);
    Buffer b = {NULL, 0, 0, 1};
    if (!(heads = PyObject_GetAttr(encoder, s_heads)) || !(keys = PyObject_GetAttr(encoder, s_keys))
        || !(texts = PyObject_GetAttr(encoder, s_texts)) || !(as_body || (result = PyList_New(count))))
        goto failed;
    if (!PyDict_CheckExact(heads) || !PyDict_CheckExact(keys) || !PyDict_CheckExact(texts)) {
        PyErr_SetString(PyExc_TypeError, "the line encoder's caches must be dicts");
        goto failed;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *record = PyTuple_GET_ITEM(records, i);
        if (as_body && i > 0 && put(&b, "\n", 1)) goto failed;
        Py_ssize_t start = as_body ? b.len : 0;
        b.len = start;
        b.ascii = 1;
        int done = encode_one(&b, record, encoder, heads, keys, texts);
        if (done < 0) goto failed;
        if (as_body && done) continue;
        if (!done) b.len = start; /* discard what a record handed over to Python left */
        PyObject *line = done ? make_line(&b) : PyObject_CallMethodOneArg(encoder, s_py_line, record);
        if (line == NULL) goto failed;
        if (!as_body) {
            PyList_SET_ITEM(result, i, line);
            continue;
        }
        int failed = put_str(&b, line);
        Py_DECREF(line);
        if (failed) goto failed;
    }
    if (as_body) result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
    PyMem_Free(b.data);
    Py_DECREF(heads);
    Py_DECREF(keys);
    Py_DECREF(texts);
    Py_DECREF(records);
    return result;
failed:
    PyMem_Free(b.data);
    Py_XDECREF(heads);
    Py_XDECREF(keys);
    Py_XDECREF(texts);
    Py_XDECREF(result);
    Py_DECREF(records);
    return NULL;
}

static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(encoder, records) takes two arguments");
        return NULL;
    }
    return encode_records(args[0], args[1], 0);
}

static PyObject *encode_body(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_body(encoder, records) takes two arguments");
        return NULL;
    }
    return encode_records(args[0], args[1], 1);
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(encoder, records) -> list of lines, one per record"},
    {"encode_body", (PyCFunction)(void (*)(void))encode_body, METH_FASTCALL,
     "encode_body(encoder, records) -> the lines as one UTF-8 body, joined by newlines"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lines", NULL, -1, methods, NULL, NULL, NULL, NULL};

#define INTERN(var, text)                                    \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;

PyMODINIT_FUNC PyInit__lines(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    INTERN(s_dict, "__dict__");
    INTERN(s_kind, "kind");
    INTERN(s_value, "_value_");
    INTERN(s_account_id, "account_id");
    INTERN(s_device_id, "device_id");
    INTERN(s_model, "model");
    INTERN(s_firmware, "firmware");
    INTERN(s_fields, "fields");
    INTERN(s_observed_at, "observed_at");
    INTERN(s_heads, "_heads");
    INTERN(s_keys, "_keys");
    INTERN(s_texts, "_texts");
    INTERN(s_head_for, "_head_for");
    INTERN(s_field_key, "_field_key");
    INTERN(s_field_text, "_field_text");
    INTERN(s_py_line, "_py_line");
    INTERN(s_utcoffset, "utcoffset");
    return PyModule_Create(&module);
}
