/*
 * The sys.monitoring callbacks that run at nearly every event, in C.
 *
 * Optional: when this module is not built (no C compiler at install time)
 * or ESCOPE_PURE_PYTHON=1 is set, monitoring.py registers its Python
 * callbacks instead.  The film is the same either way; the tests run both.
 *
 * A callback here handles the common case and hands anything else, before
 * it has changed any state, to the Python callback of the same event:
 *
 *   start   a call of code already judged in scope (not a coroutine): its
 *           frame, arguments and activation (a mutable argument is still
 *           rendered by the Python Collector)
 *   call    (full_trace) a call from filmed code into code out of scope:
 *           its name
 *   line    a step in the frame on top of this thread's stack (the Python
 *           Collector.check_watch still decides what the previous
 *           statement changed)
 *   resume  a suspended generator (not a coroutine) resuming
 *   yield / return
 *           with an immutable scalar value (rendered later by the writer)
 *
 * The Collector's FrameState and ThreadState are Python classes with
 * __slots__; their fields are read and written here at the offsets their
 * slot descriptors give, after checking the object's exact type.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#if PY_VERSION_HEX >= 0x030D0000
static inline int64_t escope_now(void) {
    PyTime_t t;
    if (PyTime_PerfCounterRaw(&t) < 0) { return 0; }
    return (int64_t)t;
}
#else
static inline int64_t escope_now(void) { return (int64_t)_PyTime_GetPerfCounter(); }
#endif

/* -- the line of an instruction -------------------------------------------------- */

/* PyFrame_GetLineNumber walks the code's line table from its start at each
   call: 5.9% of a recording of generators delegating with `yield from`
   under `minimal` (perf).  A resume, yield or return happens at a handful
   of offsets per code object, so their lines are remembered in the code
   object's own extra slot (freed with it), one int object per code unit:
   the event holds the same object, nothing is allocated per event. */
#if PY_VERSION_HEX >= 0x030C0000
static Py_ssize_t line_cache_slot = -1;

typedef struct {
    Py_ssize_t units;
    PyObject *lines[];  /* NULL: not looked up yet */
} LineCache;

/* CPython calls this for every code object that has extra slots at all,
   with NULL when ours was never set (another tool's slot made them: the
   perf trampoline of ``python -X perf``, a profiler, a JIT). */
static void free_line_cache(void *extra) {
    LineCache *cache = extra;
    if (cache == NULL) { return; }
    for (Py_ssize_t i = 0; i < cache->units; i++) { Py_XDECREF(cache->lines[i]); }
    PyMem_RawFree(cache);
}

/* The line number (a new reference) of the instruction at byte ``offset``
   of ``code``, from the cache; NULL with no error set when there is no
   cache for it (the caller asks the frame).  -1: the offset has no line. */
static PyObject *cached_line(PyObject *code, Py_ssize_t offset) {
    if (line_cache_slot < 0 || !PyCode_Check(code) || offset < 0) { return NULL; }
    Py_ssize_t unit = offset / 2;  /* a code unit is two bytes */
    void *extra = NULL;
    if (PyUnstable_Code_GetExtra(code, line_cache_slot, &extra) < 0) { PyErr_Clear(); return NULL; }
    LineCache *cache = extra;
    if (cache == NULL) {
        Py_ssize_t units = Py_SIZE(code);
        cache = PyMem_RawCalloc(1, sizeof(LineCache) + (size_t)units * sizeof(PyObject *));
        if (cache == NULL) { return NULL; }
        cache->units = units;
        if (PyUnstable_Code_SetExtra(code, line_cache_slot, cache) < 0) {
            PyErr_Clear();
            PyMem_RawFree(cache);
            return NULL;
        }
    }
    if (unit >= cache->units) { return NULL; }
    PyObject *line = cache->lines[unit];
    if (line == NULL) {
        line = PyLong_FromLong(PyCode_Addr2Line((PyCodeObject *)code, (int)(unit * 2)));
        if (line == NULL) { PyErr_Clear(); return NULL; }
        cache->lines[unit] = line;
    }
    return Py_NewRef(line);
}

/* The line number (a new reference) of the frame now at ``offset``. */
static PyObject *line_at(PyObject *code, PyObject *offset_obj, PyFrameObject *frame) {
    /* a settrace tracer (pdb, coverage's C tracer) keeps the frame's own
       f_lineno, which PyFrame_GetLineNumber returns: no shortcut then */
    if (PyLong_CheckExact(offset_obj) && PyThreadState_GET()->c_tracefunc == NULL) {
        Py_ssize_t offset = PyLong_AsSsize_t(offset_obj);
        if (offset == -1 && PyErr_Occurred()) { PyErr_Clear(); }
        PyObject *line = cached_line(code, offset);
        if (line != NULL) { return line; }
    }
    return PyLong_FromLong(PyFrame_GetLineNumber(frame));
}
#else
static PyObject *cached_line(PyObject *code, Py_ssize_t offset) {
    (void)code; (void)offset;
    return NULL;
}

static PyObject *line_at(PyObject *code, PyObject *offset_obj, PyFrameObject *frame) {
    (void)code; (void)offset_obj;
    return PyLong_FromLong(PyFrame_GetLineNumber(frame));
}
#endif

enum { K_CALL = 1, K_LINE = 2, K_RETURN = 3, K_EXCEPTION = 4, K_UNWIND = 6, K_YIELD = 7, K_RESUME = 8, K_EXTERNAL_CALL = 10 };

/* FrameState slots, in this order */
static const char *FS_FIELDS[] = {
    "frame_id", "act", "info", "code", "watch", "prev", "depth", "thread",
    "task", "exc_pending", "parent", "last", "seen", NULL
};
enum { FS_FRAME_ID, FS_ACT, FS_INFO, FS_CODE, FS_WATCH, FS_PREV, FS_DEPTH,
       FS_THREAD, FS_TASK, FS_EXC_PENDING, FS_PARENT, FS_LAST, FS_SEEN, FS_N };

/* -- the film in memory: EventLog ----------------------------------------------- */

/* One event in 48 bytes, in an array, not a 4- or 6-tuple of Python
   objects per event (a tuple, an int for the time, a list slot): tuples
   would cost both threads, the test thread allocating them, the garbage
   collector walking them, the writer dereferencing each int object again
   for each column and freeing them all.  Here the four integers are
   stored as integers, and only a value or payload is an object.  Two
   payloads of the compiled callbacks have a form of their own, with no
   object made for them: the immutable scalar a generator yields or a
   function returns (FORM_SCALAR: the ("R", value) item), and the new
   activation of a generator resuming (FORM_RESUME: the ("A", ...) item,
   its integers in ``rows``, one row per such event, in order), and a call
   (FORM_CALL: its ("F", frame, code) and ("A", ...) items from a row of
   ``rows`` and the code id in ``value``, the argument items, if any, as
   ``payload``).  tolist() and the writer give them back as the tuples they
   stand for.  Calls have a form of their own because as two tuples, alive
   until the test's film is written or dropped, they would be most of what
   sets off the garbage collector's young collections under ``minimal``.

   A log is not tracked by the garbage collector.  A payload holds ints,
   strings, tuples of those and immutable scalars of the test (``values.
   IMMUTABLE_SCALARS``), none of which can refer back to a log, so no
   reference cycle runs through one; a log frees everything it holds when
   it goes. */
#define LINE_NONE INT64_MIN  /* a frame whose f_lineno was None */
#define INT_NONE INT64_MIN   /* a resume's parent activation or task of None */
enum { FORM_OBJECTS = 0, FORM_SCALAR = 1, FORM_RESUME = 2, FORM_CALL = 3 };
/* the forms with a row in EventLog.rows */
#define HAS_ROW(e) ((e)->form == FORM_RESUME || (e)->form == FORM_CALL)

typedef struct {
    int64_t act, t, line;
    int32_t kind;
    uint8_t form;
    PyObject *value;    /* NULL: None; FORM_SCALAR: the scalar */
    PyObject *payload;  /* NULL: None; both NULL (FORM_OBJECTS): a 4-tuple event */
} Ev;

typedef struct { int64_t frame, parent, thread, task, depth; } ResumeRow;

typedef struct {
    PyObject_HEAD
    Ev *ev;
    Py_ssize_t n, cap;
    ResumeRow *rows;    /* one per FORM_RESUME or FORM_CALL event, in order */
    Py_ssize_t nrows, caprows;
    int sealed;         /* a segment: handed to the writer, never appended to */
} EventLog;

static PyTypeObject EventLogType;
static PyObject *s_tag_A, *s_tag_R, *s_tag_v, *s_tag_F;

/* The next free event of the log, or NULL with an exception set. */
static inline Ev *log_next(EventLog *log) {
    if (log->sealed) {
        PyErr_SetString(PyExc_RuntimeError, "EventLog: a sealed segment takes no events");
        return NULL;
    }
    if (log->n == log->cap) {
        Py_ssize_t cap = log->cap ? log->cap * 2 : 256;
        Ev *p = PyMem_Realloc(log->ev, (size_t)cap * sizeof(Ev));
        if (p == NULL) { PyErr_NoMemory(); return NULL; }
        log->ev = p;
        log->cap = cap;
    }
    return &log->ev[log->n];
}

/* Appends one event; ``value`` and ``payload`` are borrowed (None or NULL
   for none). */
static inline int log_push(EventLog *log, int kind, int64_t act, int64_t line, int64_t t,
                           PyObject *value, PyObject *payload) {
    Ev *e = log_next(log);
    if (e == NULL) { return -1; }
    log->n++;
    *e = (Ev){act, t, line, kind, FORM_OBJECTS,
              (value == NULL || value == Py_None) ? NULL : Py_NewRef(value),
              (payload == NULL || payload == Py_None) ? NULL : Py_NewRef(payload)};
    return 0;
}

/* An event whose payload is (("R", scalar),): a return or yield value. */
static inline int log_push_scalar(EventLog *log, int kind, int64_t act, int64_t line, int64_t t,
                                  PyObject *scalar) {
    Ev *e = log_next(log);
    if (e == NULL) { return -1; }
    log->n++;
    *e = (Ev){act, t, line, kind, FORM_SCALAR, Py_NewRef(scalar), NULL};
    return 0;
}

/* A resume opening activation ``act`` (its payload is one "A" item), or
   (FORM_CALL) a call: ``code_id`` and ``args`` (NULL for none) borrowed. */
static int log_push_row(EventLog *log, int kind, int form, int64_t act, int64_t line, int64_t t, ResumeRow row,
                        PyObject *code_id, PyObject *args) {
    Ev *e = log_next(log);
    if (e == NULL) { return -1; }
    if (log->nrows == log->caprows) {
        Py_ssize_t cap = log->caprows ? log->caprows * 2 : 64;
        ResumeRow *p = PyMem_Realloc(log->rows, (size_t)cap * sizeof(ResumeRow));
        if (p == NULL) { PyErr_NoMemory(); return -1; }
        log->rows = p;
        log->caprows = cap;
    }
    log->rows[log->nrows++] = row;
    log->n++;
    *e = (Ev){act, t, line, kind, (uint8_t)form, Py_XNewRef(code_id), Py_XNewRef(args)};
    return 0;
}

static inline int int64_of(PyObject *x, long long *out);
static void untrack_deep(PyObject *t, int depth);

/* An exact int that fits 64 bits (and is not INT64_MIN, the None of a
   compact form), or None when ``none_ok``: 1, else 0 (no error set). */
static inline int compact_int(PyObject *x, int none_ok, int64_t *out) {
    if (x == Py_None && none_ok) { *out = INT_NONE; return 1; }
    long long v;
    if (!PyLong_CheckExact(x) || !int64_of(x, &v) || v == INT64_MIN) { return 0; }
    *out = v;
    return 1;
}

static PyObject *int_or_none(int64_t v) {
    return v == INT_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(v);
}

/* The payload a compact event stands for (new reference). */
static PyObject *compact_payload(const Ev *e, const ResumeRow *row) {
    PyObject *item, *frame = NULL;
    if (e->form == FORM_SCALAR) {
        item = PyTuple_Pack(2, s_tag_R, e->value);
    } else {
        PyObject *f[6] = {PyLong_FromLongLong(e->act), PyLong_FromLongLong(row->frame), int_or_none(row->parent),
                          PyLong_FromLongLong(row->thread), int_or_none(row->task), PyLong_FromLongLong(row->depth)};
        item = (f[0] && f[1] && f[2] && f[3] && f[4] && f[5])
               ? PyTuple_Pack(7, s_tag_A, f[0], f[1], f[2], f[3], f[4], f[5]) : NULL;
        if (item != NULL && e->form == FORM_CALL && (frame = PyTuple_Pack(3, s_tag_F, f[1], e->value)) == NULL) {
            Py_CLEAR(item);
        }
        for (int i = 0; i < 6; i++) { Py_XDECREF(f[i]); }
    }
    if (item == NULL) { return NULL; }
    if (frame == NULL) {
        PyObject *payload = PyTuple_Pack(1, item);
        Py_DECREF(item);
        return payload;
    }
    /* a call: (("F", frame, code), *arguments, ("A", ...)) */
    Py_ssize_t n = e->payload ? PyTuple_GET_SIZE(e->payload) : 0;
    PyObject *payload = PyTuple_New(n + 2);
    if (payload != NULL) {
        PyTuple_SET_ITEM(payload, 0, Py_NewRef(frame));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(payload, i + 1, Py_NewRef(PyTuple_GET_ITEM(e->payload, i)));
        }
        PyTuple_SET_ITEM(payload, n + 1, Py_NewRef(item));
    }
    Py_DECREF(frame);
    Py_DECREF(item);
    return payload;
}

/* log.append((kind, act, line, t[, value, payload])): the Python
   callbacks' ``events.append`` of a list, unchanged. */
static PyObject *EventLog_append(EventLog *log, PyObject *ev) {
    Py_ssize_t width = PyTuple_CheckExact(ev) ? PyTuple_GET_SIZE(ev) : 0;
    if (width != 4 && width != 6) {
        PyErr_SetString(PyExc_TypeError, "EventLog.append() takes a 4- or 6-tuple");
        return NULL;
    }
    long long kind, act, line, t;
    PyObject *line_obj = PyTuple_GET_ITEM(ev, 2);
    if (!PyLong_CheckExact(PyTuple_GET_ITEM(ev, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(ev, 1)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(ev, 3)) || !(line_obj == Py_None || PyLong_CheckExact(line_obj)) ||
        !int64_of(PyTuple_GET_ITEM(ev, 0), &kind) || kind < 0 || kind > 255 ||
        !int64_of(PyTuple_GET_ITEM(ev, 1), &act) || !int64_of(PyTuple_GET_ITEM(ev, 3), &t)) {
        PyErr_SetString(PyExc_TypeError, "EventLog.append(): kind, act and time must be 64-bit ints");
        return NULL;
    }
    if (line_obj == Py_None) {
        line = LINE_NONE;
    } else if (!int64_of(line_obj, &line) || line == LINE_NONE) {
        PyErr_SetString(PyExc_TypeError, "EventLog.append(): the line must be a 64-bit int or None");
        return NULL;
    }
    PyObject *value = width == 6 ? PyTuple_GET_ITEM(ev, 4) : NULL;
    PyObject *payload = width == 6 ? PyTuple_GET_ITEM(ev, 5) : NULL;
    if (log_push(log, (int)kind, act, line, t, value, payload) < 0) { return NULL; }
    if (payload != NULL) { untrack_deep(payload, 2); }
    Py_RETURN_NONE;
}

static void log_release(Ev *ev, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(ev[i].value);
        Py_XDECREF(ev[i].payload);
    }
}

/* log.seal() -> a new, sealed EventLog with every event; this log is
   empty after.  Atomic under the GIL: no event is lost or doubled when
   another thread appends meanwhile. */
/* A sealed segment is read by the writer without the GIL
   (event_columns): it never changes, so it cannot be sealed or cleared. */
static int refuse_sealed(EventLog *log) {
    if (!log->sealed) { return 0; }
    PyErr_SetString(PyExc_RuntimeError, "EventLog: a sealed segment never changes");
    return -1;
}

static PyObject *EventLog_seal(EventLog *log, PyObject *unused) {
    if (refuse_sealed(log) < 0) { return NULL; }
    EventLog *seg = PyObject_New(EventLog, &EventLogType);
    if (seg == NULL) { return NULL; }
    seg->ev = log->ev;
    seg->n = log->n;
    seg->cap = log->cap;
    seg->rows = log->rows;
    seg->nrows = log->nrows;
    seg->caprows = log->caprows;
    seg->sealed = 1;
    log->ev = NULL;
    log->n = log->cap = 0;
    log->rows = NULL;
    log->nrows = log->caprows = 0;
    return (PyObject *)seg;
}

/* Forget every event; frees after the log is consistent (a destructor of
   a value may run). */
static void log_forget(EventLog *log) {
    Ev *ev = log->ev;
    Py_ssize_t n = log->n;
    ResumeRow *rows = log->rows;
    log->ev = NULL;
    log->n = log->cap = 0;
    log->rows = NULL;
    log->nrows = log->caprows = 0;
    log_release(ev, n);
    PyMem_Free(ev);
    PyMem_Free(rows);
}

static PyObject *EventLog_clear(EventLog *log, PyObject *unused) {
    if (refuse_sealed(log) < 0) { return NULL; }
    log_forget(log);
    Py_RETURN_NONE;
}

static PyObject *ev_tuple(const Ev *e, const ResumeRow *row) {
    PyObject *line = e->line == LINE_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(e->line);
    PyObject *kind = PyLong_FromLong(e->kind), *act = PyLong_FromLongLong(e->act),
             *t = PyLong_FromLongLong(e->t);
    PyObject *tup = NULL;
    if (line && kind && act && t) {
        if (e->form != FORM_OBJECTS) {
            PyObject *payload = compact_payload(e, row);
            tup = payload ? PyTuple_Pack(6, kind, act, line, t, Py_None, payload) : NULL;
            Py_XDECREF(payload);
        } else if (e->value == NULL && e->payload == NULL) {
            tup = PyTuple_Pack(4, kind, act, line, t);
        } else {
            tup = PyTuple_Pack(6, kind, act, line, t, e->value ? e->value : Py_None,
                               e->payload ? e->payload : Py_None);
        }
    }
    Py_XDECREF(line); Py_XDECREF(kind); Py_XDECREF(act); Py_XDECREF(t);
    return tup;
}

/* log.tolist() -> the events as the tuples a list would hold (the Python
   writer loop and the tests read them so). */
static PyObject *EventLog_tolist(EventLog *log, PyObject *unused) {
    PyObject *out = PyList_New(log->n);
    if (out == NULL) { return NULL; }
    Py_ssize_t r = 0;
    for (Py_ssize_t i = 0; i < log->n; i++) {
        const Ev *e = &log->ev[i];
        const ResumeRow *row = NULL;
        if (HAS_ROW(e)) {
            if (r >= log->nrows) { Py_DECREF(out); PyErr_SetString(PyExc_SystemError, "EventLog: rows out of step"); return NULL; }
            row = &log->rows[r++];
        }
        PyObject *tup = ev_tuple(e, row);
        if (tup == NULL) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, tup);
    }
    return out;
}

static Py_ssize_t EventLog_len(EventLog *log) { return log->n; }

static void EventLog_dealloc(EventLog *log) {
    log_forget(log);
    Py_TYPE(log)->tp_free((PyObject *)log);
}

static PyMethodDef EventLog_methods[] = {
    {"append", (PyCFunction)EventLog_append, METH_O, "Append one event tuple (kind, act, line, t[, value, payload])."},
    {"seal", (PyCFunction)EventLog_seal, METH_NOARGS, "Move every event into a new sealed log and return it."},
    {"clear", (PyCFunction)EventLog_clear, METH_NOARGS, "Forget every event."},
    {"tolist", (PyCFunction)EventLog_tolist, METH_NOARGS, "The events as a list of tuples."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods EventLog_as_sequence = {
    .sq_length = (lenfunc)EventLog_len,
};

static PyTypeObject EventLogType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_escope.recorder._hotpath.EventLog",
    .tp_basicsize = sizeof(EventLog),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The film in memory: events as an array of integers, values and payloads.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)EventLog_dealloc,
    .tp_methods = EventLog_methods,
    .tp_as_sequence = &EventLog_as_sequence,
};

static const char *TS_FIELDS[] = {"thread_id", "stack", "task", NULL};
enum { TS_THREAD_ID, TS_STACK, TS_TASK, TS_N };

typedef struct {
    PyObject_HEAD
    PyObject *col;          /* the Collector */
    PyObject *events;       /* col.events: the EventLog of the whole recording */
    PyObject *threads;      /* col.threads: get_ident() -> ThreadState */
    PyObject *infos;        /* id(code) -> CodeInfo, shared with monitoring.py */
    PyObject *outside;      /* id(code) -> code judged out of scope (monitoring.on_call fills it) */
    PyObject *suspended;    /* col.suspended: id(frame) -> FrameState */
    PyObject *act_ids;      /* col.act_ids: itertools.count */
    PyObject *secret_names; /* col.secret_names: name -> bool */
    PyObject *immutable;    /* frozenset of the immutable scalar types */
    PyTypeObject *fs_type;
    PyTypeObject *ts_type;
    PyObject *py_line, *py_resume, *py_yield, *py_return, *py_jump, *py_start, *py_call;
    PyObject *vids;         /* col.vids: itertools.count of value ids */
    PyObject *frame_ids;    /* col.frame_ids: itertools.count */
    PyObject *code_ids;     /* col.code_ids: id(code) -> (code, code_id) */
    PyObject *disable;      /* sys.monitoring.DISABLE */
    PyObject *check_watch, *spill, *overflow, *fault, *with_self;
    PyObject *owned;        /* interrupts.owned_by_test: an exception the test must get */
    PyObject *bind_changed, *recheck_mutable;  /* Collector methods check_watch calls */
    PyObject *objs;         /* col.objs: id(object) -> (fingerprint, vid, objnum, type) */
    PyObject *objnums;      /* col.objnums: itertools.count of object numbers */
    PyObject *max_size, *max_items;  /* the renderer's limits (ints) */
    int render_here;        /* 1: capture_here may render a list or tuple of scalars */
    PyObject *exception;    /* col.exception, for what Hot_raise leaves to Python */
    PyObject *exc_log;      /* col.exc_log: (step, id(exc), type name) of each exception filmed */
    PyObject *exc_shown;    /* col.renderer._exceptions: renderings by class and scalar args */
    PyObject *c_kinds, *classify;  /* col.renderer._c_kinds and c_kind, for packed fingerprints */
    PyTypeObject *imm_types[16];               /* the immutable scalar types */
    int n_imm;
    PyObject *last_ts;      /* ThreadState of last_ident */
    unsigned long last_ident;
    Py_ssize_t limit;       /* col.hot_limit */
    int record_lines, full;
    int64_t t0;
    int64_t spill_at;       /* col.spill_at as last read (it only grows) */
    /* code -> its CodeInfo, for code already found in ``infos`` (which
       only grows while this object lives): strong references, so a code
       object's address is not reused while it is here */
#define INFO_SLOTS 64
    PyObject *info_code[INFO_SLOTS], *info_info[INFO_SLOTS];
    Py_ssize_t fs_off[FS_N];
    Py_ssize_t ts_off[TS_N];
} Hot;

static PyObject *s_slots, *s_dict, *s_qualname, *s_tag_r;
static PyObject *s_base, *s_segmented, *s_moving, *s_step_count, *msg_raise;
static PyObject *s_active, *s_spill_at, *s_is_coro, *s_method_self, *s_watch, *s_tag_s, *s_tag_b;
static PyObject *k_line, *k_return, *k_yield, *k_resume, *zero, *one;
static PyObject *msg_line, *msg_resume, *msg_yield, *msg_return, *msg_start, *msg_call;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
#define FS(h, fs, f) SLOT(fs, (h)->fs_off[f])
#define TS(h, ts, f) SLOT(ts, (h)->ts_off[f])
#define LOG(h) ((EventLog *)(h)->events)

static inline void set_slot(PyObject *obj, Py_ssize_t off, PyObject *value) {
    PyObject **p = (PyObject **)((char *)obj + off);
    PyObject *old = *p;
    Py_INCREF(value);
    *p = value;
    Py_XDECREF(old);
}

static int slot_offsets(PyTypeObject *type, const char **names, Py_ssize_t *out) {
    for (int i = 0; names[i] != NULL; i++) {
        PyObject *d = PyDict_GetItemString(type->tp_dict, names[i]);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX && m->type != T_OBJECT) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, names[i]);
            return -1;
        }
        out[i] = m->offset;
    }
    return 0;
}

/* 1 when the exception being raised belongs to the test: a signal handler
   raised it inside Python code the recorder called (interrupts.py says how
   that is told).  The exception stays set either way; 0 when unsure. */
static int owned_by_test(Hot *h) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) { PyException_SetTraceback(value, tb); }
    PyObject *exc = value;
#endif
    int owned = 0;
    if (exc != NULL && h->owned != NULL) {
        PyObject *r = PyObject_CallOneArg(h->owned, exc);
        owned = r != NULL && r == Py_True;
        if (r == NULL) { PyErr_Clear(); }
        Py_XDECREF(r);
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(type, value, tb);
#endif
    return owned;
}

/* A recorder error becomes a fault on the collector, never an exception in
   the test.  An exception that is not an Exception (KeyboardInterrupt,
   SystemExit, pytest's outcomes raised by a signal handler that ran during
   a call we made) belongs to the test: it propagates, as it does from the
   Python callbacks' ``except Exception``. */
static int owned_by_test(Hot *h);

static PyObject *failed(Hot *h, PyObject *message) {
    PyObject *exc = PyErr_Occurred();
    if (exc != NULL && !PyErr_GivenExceptionMatches(exc, PyExc_Exception)) { return NULL; }
    if (exc != NULL && owned_by_test(h)) { return NULL; }
    PyErr_Clear();
    PyObject *r = PyObject_CallOneArg(h->fault, message);
    if (r == NULL) {
        exc = PyErr_Occurred();
        if (exc != NULL && !PyErr_GivenExceptionMatches(exc, PyExc_Exception)) { return NULL; }
        PyErr_Clear();
    } else {
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

/* The ThreadState of the calling thread, borrowed, or NULL (not an error). */
static PyObject *thread_state(Hot *h) {
    unsigned long ident = PyThread_get_thread_ident();
    if (h->last_ts != NULL && ident == h->last_ident) { return h->last_ts; }
    PyObject *key = PyLong_FromUnsignedLong(ident);
    if (key == NULL) { PyErr_Clear(); return NULL; }
    PyObject *ts = PyDict_GetItemWithError(h->threads, key);
    Py_DECREF(key);
    if (ts == NULL) { PyErr_Clear(); return NULL; }
    if (!Py_IS_TYPE(ts, h->ts_type)) { return NULL; }
    Py_INCREF(ts);
    Py_XSETREF(h->last_ts, ts);
    h->last_ident = ident;
    return ts;
}

/* The FrameState on top of ``ts``'s stack when it films ``code``, borrowed. */
static PyObject *top_for(Hot *h, PyObject *ts, PyObject *code) {
    PyObject *stack = TS(h, ts, TS_STACK);
    if (stack == NULL || !PyList_CheckExact(stack)) { return NULL; }
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (n == 0) { return NULL; }
    PyObject *fs = PyList_GET_ITEM(stack, n - 1);
    if (!Py_IS_TYPE(fs, h->fs_type) || FS(h, fs, FS_CODE) != code) { return NULL; }
    return fs;
}

/* Untrack a tuple whose items the garbage collector has no reason to visit
   (objects without GC support, or tuples already untracked), after doing
   the same for its tuple items, ``depth`` levels down.  The collector does
   this itself for the tuples it examines, but it examines a container
   before its items about as often as after, so an event tuple with a
   payload can take three collections to be untracked and reach the oldest
   generation tracked, where every full collection visits it again. */
static void untrack_deep(PyObject *t, int depth) {
    if (!PyTuple_CheckExact(t) || !PyObject_GC_IsTracked(t)) { return; }
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyTuple_GET_ITEM(t, i);
        if (x == NULL) { return; }
        if (!PyObject_IS_GC(x)) { continue; }
        if (!PyTuple_CheckExact(x) || depth <= 0) { return; }
        untrack_deep(x, depth - 1);
        if (PyObject_GC_IsTracked(x)) { return; }
    }
    PyObject_GC_UnTrack(t);
}

static PyObject *fallback(PyObject *func, PyObject *const *args, Py_ssize_t nargs) {
    return PyObject_Vectorcall(func, args, nargs, NULL);
}

static int fs_complete(Hot *h, PyObject *fs) {
    for (int i = 0; i < FS_N; i++) {
        if (FS(h, fs, i) == NULL) { return 0; }
    }
    return 1;
}

/* Collector.spill when ``t`` (>= 0) is past col.spill_at, else
   Collector.overflow when the event list reached hot_limit. */
static int maybe_spill(Hot *h, int64_t t) {
    PyObject *call = NULL;
    if (t >= 0 && t > h->spill_at) {
        /* read again only when past the value last read: it only grows
           (Collector.spill moves it on), and the attribute lookup cost
           every resume and call */
        PyObject *at = PyObject_GetAttr(h->col, s_spill_at);
        if (at == NULL) { return -1; }
        long long spill_at = PyLong_AsLongLong(at);
        Py_DECREF(at);
        if (spill_at == -1 && PyErr_Occurred()) { return -1; }
        h->spill_at = spill_at;
        if (t > spill_at) { call = h->spill; }
    }
    if (call == NULL && LOG(h)->n >= h->limit) { call = h->overflow; }
    if (call == NULL) { return 0; }
    PyObject *r = PyObject_CallNoArgs(call);
    if (r == NULL) { return -1; }
    Py_DECREF(r);
    return 0;
}

/* -- reading a frame's locals without touching its f_locals ------------------- */

/* Python 3.12's PyFrame_GetLocals is FastToLocals: it writes every local
   into the frame's f_locals dict, the very dict a ``d = locals()`` of the
   test holds (``d`` then gains the later names) and a dict that keeps one
   more reference to each value (``sys.getrefcount`` is one higher).
   PyFrame_GetVar (3.12+) reads one variable the way FastToLocals reads it,
   cells included, and writes nothing.  3.13's PyFrame_GetLocals is a
   write-through view of the fast locals, which perturbs nothing: it is kept
   there.  3.11 records with sys.settrace, whose trampoline syncs f_locals
   before every call of a trace function whatever we do. */
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
#define ESCOPE_FRAME_VARS 1
#else
#define ESCOPE_FRAME_VARS 0
#endif

#if ESCOPE_FRAME_VARS
/* The value of local ``name`` (new reference), or NULL: unbound (no error
   set) or an error. */
static PyObject *frame_var(PyFrameObject *frame, PyObject *name) {
    PyObject *v = PyFrame_GetVar(frame, name);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_NameError)) { PyErr_Clear(); }
    return v;
}

/* A new dict of ``names`` (an iterable of str: the keys of FrameState.last)
   bound in the frame: what the Python side reads instead of f_locals. */
static PyObject *frame_vars_of(PyFrameObject *frame, PyObject *names) {
    PyObject *out = PyDict_New();
    if (out == NULL) { return NULL; }
    Py_ssize_t pos = 0;
    PyObject *name, *unused;
    while (PyDict_Next(names, &pos, &name, &unused)) {
        if (!PyUnicode_Check(name)) { continue; }
        PyObject *v = frame_var(frame, name);
        if (v == NULL) {
            if (PyErr_Occurred()) { Py_DECREF(out); return NULL; }
            continue;
        }
        int rc = PyDict_SetItem(out, name, v);
        Py_DECREF(v);
        if (rc < 0) { Py_DECREF(out); return NULL; }
    }
    return out;
}

/* Every bound local of the frame, in FastToLocals' order, as a new list of
   (name, value) pairs: the arguments of a frame just entered. */
static PyObject *frame_items(PyFrameObject *frame) {
    PyCodeObject *co = PyFrame_GetCode(frame);
    PyObject *names = co->co_localsplusnames;
    PyObject *out = PyList_New(0);
    if (out == NULL) { Py_DECREF(co); return NULL; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *v = frame_var(frame, name);
        if (v == NULL) {
            if (PyErr_Occurred()) { Py_DECREF(out); Py_DECREF(co); return NULL; }
            continue;
        }
        PyObject *pair = PyTuple_Pack(2, name, v);
        Py_DECREF(v);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair); Py_DECREF(out); Py_DECREF(co);
            return NULL;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(co);
    return out;
}
#endif

/* -- what a statement changed (Collector.check_watch, in C) ------------------ */

static inline int is_immutable(Hot *h, PyObject *v) {
    PyTypeObject *t = Py_TYPE(v);
    for (int i = 0; i < h->n_imm; i++) {
        if (h->imm_types[i] == t) { return 1; }
    }
    return 0;
}

/* The local ``name`` of the frame (new reference); NULL with no error set
   when it is unbound. */
static PyObject *local_value(PyObject *loc, PyObject *name) {
    if (PyDict_CheckExact(loc)) {
        PyObject *v = PyDict_GetItemWithError(loc, name);
        return Py_XNewRef(v);
    }
    PyObject *v = PyObject_GetItem(loc, name);  /* 3.13: a FrameLocalsProxy */
    if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) { PyErr_Clear(); }
    return v;
}

static int append_item(PyObject *out, PyObject *tag, PyObject *fid, PyObject *name, PyObject *v) {
    PyObject *item = PyTuple_Pack(4, tag, fid, name, v);
    if (item == NULL) { return -1; }
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

/* ``name`` may be bound to another object than at the last look (``last``
   holds the id() it had): 1 if so, and ``last`` is updated. */
static int identity_changed(PyObject *last, PyObject *name, PyObject *v) {
    PyObject *was = PyDict_GetItemWithError(last, name);
    if (was == NULL && PyErr_Occurred()) { return -1; }
    if (was != NULL && PyLong_CheckExact(was)) {
        void *p = PyLong_AsVoidPtr(was);
        if (p == NULL && PyErr_Occurred()) { PyErr_Clear(); }
        else if (p == (void *)v) { return 0; }
    }
    PyObject *id = PyLong_FromVoidPtr(v);
    if (id == NULL) { return -1; }
    int rc = PyDict_SetItem(last, name, id);
    Py_DECREF(id);
    return rc < 0 ? -1 : 1;
}

static PyObject *cached_vid(Hot *h, PyObject *v);
static int capture_here(Hot *h, PyObject *v, PyObject *out, PyObject **vid);

static int bind(Hot *h, PyObject *fs, PyObject *fid, PyObject *name, PyObject *v, PyObject *out) {
    PyObject *secret = PyDict_GetItemWithError(h->secret_names, name);
    if (secret == Py_False) {
        if (is_immutable(h, v)) { return append_item(out, s_tag_s, fid, name, v); }
        /* Collector.bind_changed when capture needs no Python */
        PyObject *vid = NULL, *seen = FS(h, fs, FS_SEEN);
        int rc = PyDict_CheckExact(seen) ? capture_here(h, v, out, &vid) : 0;
        if (rc < 0) { return -1; }
        if (rc == 1) {
            rc = PyDict_SetItem(seen, name, vid) < 0 ? -1 : append_item(out, s_tag_b, fid, name, vid);
            Py_DECREF(vid);
            return rc;
        }
    }
    if (PyErr_Occurred()) { return -1; }
    PyObject *args[4] = {fs, name, v, out};
    PyObject *r = PyObject_Vectorcall(h->bind_changed, args, 4, NULL);
    if (r == NULL) { return -1; }
    Py_DECREF(r);
    return 0;
}

static inline int is_scalar_type(PyObject *v) {
    PyTypeObject *t = Py_TYPE(v);
    return t == &PyLong_Type || t == &PyUnicode_Type || t == &PyFloat_Type || t == &PyBool_Type ||
           v == Py_None || t == &PyBytes_Type || t == &PyComplex_Type;
}

#define SHALLOW_LIMIT 30  /* values._SHALLOW_LIMIT */

/* The item array and length of a list or tuple (or a subclass: the C
   array is read, no user code runs): 1, or 0 for anything else. */
static int sequence_items(PyObject *v, PyObject ***items, Py_ssize_t *n) {
    if (PyList_Check(v)) {
        *items = ((PyListObject *)v)->ob_item;
        *n = PyList_GET_SIZE(v);
        return 1;
    }
    if (PyTuple_Check(v)) {
        *items = ((PyTupleObject *)v)->ob_item;
        *n = PyTuple_GET_SIZE(v);
        return 1;
    }
    return 0;
}


/* Whether the list or tuple ``v`` (or a subclass; the C array is read, no
   user code runs) is what its last snapshot shows: Collector.recheck_mutable's
   commonest outcome (a call that may have mutated a list did not),
   answered without calling it.  Its fingerprint, as
   scalar_fingerprint would make it, is compared in place with the one the
   snapshot kept (Collector.objs), so nothing is allocated.  1: unchanged,
   and this frame had seen that snapshot already; 0: Python decides. */
/* A type's namespace (new reference).  3.12+: a static builtin type's
   tp_dict is NULL; PyType_GetDict has it. */
static PyObject *type_dict(PyTypeObject *t) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyType_GetDict(t);
#else
    return Py_XNewRef(t->tp_dict);
#endif
}

/* 1 when values.fingerprint of an instance of ``t`` is always (): a type
   of the interpreter or of a C extension (a class statement makes a heap
   type) that is no container fingerprint reads, with no instance __dict__
   and no __slots__ anywhere in its MRO: a builtin method, an iterator, a
   generator, a bytes-like buffer.  Nothing the renderer shows of it can
   change while it stays bound to the same name. */
static int identity_only_type(PyTypeObject *t) {
    if (t->tp_dictoffset != 0 ||
        (t->tp_flags & (Py_TPFLAGS_LIST_SUBCLASS | Py_TPFLAGS_TUPLE_SUBCLASS | Py_TPFLAGS_DICT_SUBCLASS)) ||
        PyType_IsSubtype(t, &PySet_Type) || PyType_IsSubtype(t, &PyFrozenSet_Type)) {
        return 0;
    }
    /* a static type lives as long as the interpreter: its answer is kept */
#define KNOWN_TYPES 32
    static PyTypeObject *known[KNOWN_TYPES];
    static char answer[KNOWN_TYPES];
    int is_static = !(t->tp_flags & Py_TPFLAGS_HEAPTYPE);
    size_t slot = ((uintptr_t)t >> 4) % KNOWN_TYPES;
    if (is_static && known[slot] == t) { return answer[slot]; }
    PyObject *mro = t->tp_mro;
    if (mro == NULL || !PyTuple_CheckExact(mro)) { return 0; }
    int result = 1;
    for (Py_ssize_t i = 0; result && i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *d = type_dict((PyTypeObject *)PyTuple_GET_ITEM(mro, i));
        if (d == NULL || !PyDict_CheckExact(d)) {
            PyErr_Clear();
            Py_XDECREF(d);
            return 0;
        }
        PyObject *slots = PyDict_GetItemWithError(d, s_slots);
        PyObject *dict = slots == NULL ? PyDict_GetItemWithError(d, s_dict) : NULL;
        if (slots != NULL || dict != NULL || PyErr_Occurred()) { PyErr_Clear(); result = 0; }
        Py_DECREF(d);
    }
    if (is_static) {
        known[slot] = t;
        answer[slot] = (char)result;
    }
    return result;
}

/* 1 when values.fingerprint of an instance of ``t`` is its instance
   __dict__ alone: a class statement's type (not a container, not an
   exception: those have more parts) with no __slots__ in its MRO, whose
   __dict__ is the interpreter's own getset descriptor (Renderer._info's
   dict_getter). */
static int plain_object_type(PyTypeObject *t) {
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_dictoffset == 0 ||
        (t->tp_flags & (Py_TPFLAGS_LIST_SUBCLASS | Py_TPFLAGS_TUPLE_SUBCLASS | Py_TPFLAGS_DICT_SUBCLASS |
                        Py_TPFLAGS_BASE_EXC_SUBCLASS)) ||
        PyType_IsSubtype(t, &PySet_Type) || PyType_IsSubtype(t, &PyFrozenSet_Type)) {
        return 0;
    }
    PyObject *mro = t->tp_mro;
    if (mro == NULL || !PyTuple_CheckExact(mro)) { return 0; }
    int seen_dict = 0, result = 1;
    for (Py_ssize_t i = 0; result && i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *d = type_dict((PyTypeObject *)PyTuple_GET_ITEM(mro, i));
        if (d == NULL || !PyDict_CheckExact(d)) { PyErr_Clear(); Py_XDECREF(d); return 0; }
        PyObject *slots = PyDict_GetItemWithError(d, s_slots);
        PyObject *dict = slots == NULL && !seen_dict ? PyDict_GetItemWithError(d, s_dict) : NULL;
        if (slots != NULL || PyErr_Occurred()) { PyErr_Clear(); result = 0; }
        if (dict != NULL) {
            seen_dict = 1;
            if (!Py_IS_TYPE(dict, &PyGetSetDescr_Type)) { result = 0; }  /* a property: user code */
        }
        Py_DECREF(d);
    }
    return result && seen_dict;
}

/* What Renderer._info's dict_getter is for instances of ``t``: 0 none (no
   "__dict__" in the MRO, or a property there), 1 the interpreter's getset
   on an instance dict PyObject_GenericGetDict reads, -1 C cannot tell. */
static int dict_getter_kind(PyTypeObject *t) {
    PyObject *mro = t->tp_mro;
    if (mro == NULL || !PyTuple_CheckExact(mro)) { return -1; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *d = type_dict((PyTypeObject *)PyTuple_GET_ITEM(mro, i));
        if (d == NULL || !PyDict_CheckExact(d)) { PyErr_Clear(); Py_XDECREF(d); return -1; }
        PyObject *dict = PyDict_GetItemWithError(d, s_dict);
        int kind = dict == NULL ? (PyErr_Occurred() ? -1 : 2)
                   : !Py_IS_TYPE(dict, &PyGetSetDescr_Type) ? 0 : t->tp_dictoffset != 0 ? 1 : -1;
        PyErr_Clear();
        Py_DECREF(d);
        if (kind != 2) { return kind; }
    }
    return 0;
}

/* ``x`` is an int whose value is the address of ``p`` (an id). */
static inline int id_is(PyObject *x, void *p) {
    if (!PyLong_CheckExact(x)) { return 0; }
    void *q = PyLong_AsVoidPtr(x);
    if (q == NULL && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    return q == p;
}

/* ``x`` is an int equal to ``n``. */
static inline int len_is(PyObject *x, Py_ssize_t n) {
    if (!PyLong_CheckExact(x)) { return 0; }
    Py_ssize_t m = PyLong_AsSsize_t(x);
    if (m == -1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    return m == n;
}

#define NESTED_LIMIT 10  /* values._NESTED_LIMIT */

/* values._nested_print(x) equals ``want``: 1, 0, or 0 when C cannot tell
   (Python then decides).  Lengths and ids only, as there. */
static int dict_getter_kind(PyTypeObject *t);

static int nested_same(PyObject *want, PyObject *x) {
    if (is_scalar_type(x) || PyTuple_CheckExact(x) || identity_only_type(Py_TYPE(x))) { return want == Py_None; }
    if (!PyTuple_CheckExact(want) || PyTuple_GET_SIZE(want) < 1) { return 0; }
    Py_ssize_t size = PyTuple_GET_SIZE(want);
    if (PyList_Check(x)) {
        Py_ssize_t n = PyList_GET_SIZE(x), k = n < NESTED_LIMIT ? n : NESTED_LIMIT;
        if (size != k + 1 || !len_is(PyTuple_GET_ITEM(want, 0), n)) { return 0; }
        for (Py_ssize_t i = 0; i < k; i++) {
            if (!id_is(PyTuple_GET_ITEM(want, i + 1), PyList_GET_ITEM(x, i))) { return 0; }
        }
        return 1;
    }
    if (PyAnySet_Check(x)) { return size == 1 && len_is(PyTuple_GET_ITEM(want, 0), PySet_GET_SIZE(x)); }
    PyObject *ns = NULL;
    int owned = 0;
    int kind = PyDict_Check(x) ? 2 : dict_getter_kind(Py_TYPE(x));
    if (kind == 0) { return want == Py_None; }  /* no __dict__ getter: _nested_print is None */
    if (kind == 2) {
        ns = x;
    } else if (kind == 1) {
        if ((ns = PyObject_GenericGetDict(x, NULL)) == NULL) { PyErr_Clear(); return 0; }
        owned = 1;
    } else {
        return 0;
    }
    int same = 0;
    if (PyDict_CheckExact(ns) || PyDict_Check(ns)) {
        Py_ssize_t n = PyDict_GET_SIZE(ns), k = n < NESTED_LIMIT ? n : NESTED_LIMIT, pos = 0, i = 0;
        PyObject *key, *val;
        same = size == k + 1 && len_is(PyTuple_GET_ITEM(want, 0), n);
        while (same && i < k && PyDict_Next(ns, &pos, &key, &val)) {
            same = id_is(PyTuple_GET_ITEM(want, ++i), val);
        }
        same = same && i == k;
    }
    if (owned) { Py_DECREF(ns); }
    return same;
}

static int packed_unchanged(PyObject *kinds, PyObject *classify, PyObject *v, PyObject *fp);

/* values.fingerprint of a plain_object_type instance equals ``fp``
   (len(ns), ids of its first 30 keys, of their values, their nested
   prints), compared in place: 1 or 0.  A packed fingerprint (what
   fingerprint_tree made) is made again and compared. */
static int object_unchanged(Hot *h, PyObject *v, PyObject *fp) {
    if (PyBytes_CheckExact(fp)) { return packed_unchanged(h->c_kinds, h->classify, v, fp); }
    if (!PyTuple_CheckExact(fp)) { return 0; }
    Py_ssize_t size = PyTuple_GET_SIZE(fp);
    if (size == 0) { return 1; }  /* an opaque class (Renderer._info): always () */
    PyObject *ns = PyObject_GenericGetDict(v, NULL);  /* what the __dict__ getset returns */
    if (ns == NULL) { PyErr_Clear(); return 0; }
    int same = 0;
    if (PyDict_CheckExact(ns)) {
        Py_ssize_t n = PyDict_GET_SIZE(ns), m = n < SHALLOW_LIMIT ? n : SHALLOW_LIMIT, pos = 0, i = 0;
        PyObject *key, *val;
        same = size == 1 + 3 * m && len_is(PyTuple_GET_ITEM(fp, 0), n);
        while (same && i < m && PyDict_Next(ns, &pos, &key, &val)) {
            same = id_is(PyTuple_GET_ITEM(fp, 1 + i), key) && id_is(PyTuple_GET_ITEM(fp, 1 + m + i), val) &&
                   nested_same(PyTuple_GET_ITEM(fp, 1 + 2 * m + i), val);
            i++;
        }
        same = same && i == m;
    }
    Py_DECREF(ns);
    return same;
}

/* ``v``'s row in Collector.objs (borrowed), (fingerprint, vid, objnum,
   class, scalars kept alive), when it is one of ``v``'s class; NULL with
   no error set when there is none.  ``key`` is id(v). */
static PyObject *objs_row(Hot *h, PyObject *key, PyObject *v) {
    PyObject *entry = PyDict_GetItemWithError(h->objs, key);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 5 ||
        PyTuple_GET_ITEM(entry, 3) != (PyObject *)Py_TYPE(v)) {
        PyErr_Clear();
        return NULL;
    }
    return entry;
}

static void forget_row(PyObject *row);

/* Collector.capture's new snapshot of ``v``, rendered as ``shown`` (type
   name, text, detail, flags): the object number of ``entry`` (its last
   row, or NULL for a new object), a new value id, the ("v", ...) item
   appended to ``out`` and the row (fp, vid, objnum, class, alive) stored
   under ``key``.  0 with *vid set (new reference), or -1. */
static int take_snapshot(Hot *h, PyObject *v, PyObject *key, PyObject *entry, PyObject *fp, PyObject *alive,
                         PyObject *shown, PyObject *out, PyObject **vid) {
    PyObject *objnum = entry != NULL ? Py_NewRef(PyTuple_GET_ITEM(entry, 2)) : PyIter_Next(h->objnums);
    PyObject *new_vid = objnum ? PyIter_Next(h->vids) : NULL, *item = NULL, *row = NULL;
    int rc = -1;
    if (new_vid != NULL) {
        item = PyTuple_Pack(7, s_tag_v, new_vid, objnum, PyTuple_GET_ITEM(shown, 0), PyTuple_GET_ITEM(shown, 1),
                            PyTuple_GET_ITEM(shown, 2), PyTuple_GET_ITEM(shown, 3));
        row = item ? PyTuple_Pack(5, fp, new_vid, objnum, (PyObject *)Py_TYPE(v), alive) : NULL;
    }
    if (row != NULL && PyList_Append(out, item) == 0 && PyDict_SetItem(h->objs, key, row) == 0) {
        forget_row(row);
        *vid = Py_NewRef(new_vid);
        rc = 0;
    }
    Py_XDECREF(objnum); Py_XDECREF(new_vid); Py_XDECREF(item); Py_XDECREF(row);
    return rc;
}

/* The value row of ``v``'s last snapshot when nothing the renderer shows
   of it can have changed since (borrowed), else NULL with no error set:
   Collector.capture's cache hit, for a list or tuple of scalars (its
   fingerprint compared in place) and for an identity-only object. */
static PyObject *cached_vid(Hot *h, PyObject *v) {
    PyObject **items = NULL;
    Py_ssize_t n = 0;
    int identity_only = 0, plain = 0;
    if (!sequence_items(v, &items, &n)) {
        identity_only = identity_only_type(Py_TYPE(v));
        plain = !identity_only && plain_object_type(Py_TYPE(v));
        if (!identity_only && !plain) { return NULL; }
    }
    Py_ssize_t k = n < SHALLOW_LIMIT ? n : SHALLOW_LIMIT;
    PyObject *key = PyLong_FromVoidPtr(v);
    if (key == NULL) { PyErr_Clear(); return NULL; }
    PyObject *entry = objs_row(h, key, v);
    Py_DECREF(key);
    if (entry == NULL) { return NULL; }
    PyObject *fp = PyTuple_GET_ITEM(entry, 0);
    if (identity_only) {
        if (!PyTuple_CheckExact(fp) || PyTuple_GET_SIZE(fp) != 0) { return NULL; }
        return PyTuple_GET_ITEM(entry, 1);
    }
    if (plain) { return object_unchanged(h, v, fp) ? PyTuple_GET_ITEM(entry, 1) : NULL; }
    if (!PyTuple_CheckExact(fp) || PyTuple_GET_SIZE(fp) != k + 1 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(fp, 0)) || PyLong_AsSsize_t(PyTuple_GET_ITEM(fp, 0)) != n) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *id = PyTuple_GET_ITEM(fp, i + 1);
        if (!is_scalar_type(items[i]) || !PyLong_CheckExact(id) || PyLong_AsVoidPtr(id) != (void *)items[i]) {
            PyErr_Clear();
            return NULL;
        }
    }
    return PyTuple_GET_ITEM(entry, 1);
}

/* A row of Collector.objs, (fingerprint, vid, objnum, class, scalars kept
   alive), leaves the garbage collector's lists: it refers to no object that
   could refer back to it (ints, tuples of ints and scalars, a class), so it
   is never part of a cycle.  Tracked, a test's thousands of rows would
   survive young collections into the old generation and set off extra
   full collections (9 against plain pytest's 4 on more-itertools). */
static void forget_row(PyObject *row) {
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 5) { return; }
    for (int i = 0; i < 5; i += 4) {  /* the fingerprint and the scalars: ints and scalars only */
        PyObject *t = PyTuple_GET_ITEM(row, i);
        if (PyTuple_CheckExact(t) && PyObject_GC_IsTracked(t)) {
            untrack_deep(t, 0);
        }
    }
    if (PyObject_GC_IsTracked(row)) { PyObject_GC_UnTrack(row); }
}

static PyObject *forget_row_py(PyObject *module, PyObject *row) {
    forget_row(row);
    Py_RETURN_NONE;
}

static PyObject *scalar_fingerprint(PyObject *module, PyObject *value);
static PyObject *render_scalar_sequence(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* Collector.capture for what C answers alone: a cache hit (cached_vid), or
   an exact list or tuple of scalars, fingerprinted, rendered and numbered
   as capture does it (so a generator yielding fresh tuples does not go
   through Python at every item).  1: *vid is set (new reference) and the
   snapshot, if one was taken, appended to ``out``; 0: Python decides, and
   nothing changed; -1: an error. */
static int capture_here(Hot *h, PyObject *v, PyObject *out, PyObject **vid) {
    PyObject *hit = cached_vid(h, v);
    if (hit != NULL) {
        *vid = Py_NewRef(hit);
        return 1;
    }
    if (PyErr_Occurred()) { return -1; }
    if (!h->render_here || (!Py_IS_TYPE(v, &PyList_Type) && !Py_IS_TYPE(v, &PyTuple_Type))) { return 0; }
    PyObject *fp = scalar_fingerprint(NULL, v);
    if (fp == NULL) { return -1; }
    if (fp == Py_None) { Py_DECREF(fp); return 0; }
    PyObject *rargs[3] = {v, h->max_size, h->max_items};
    PyObject *shown = render_scalar_sequence(NULL, rargs, 3);
    if (shown == NULL || !PyTuple_CheckExact(shown) || PyTuple_GET_SIZE(shown) != 4) {
        /* Renderer._render treats a failure of the compiled path as "render in Python" */
        PyErr_Clear();
        Py_XDECREF(shown);
        Py_DECREF(fp);
        return 0;
    }
    /* values.kept_alive: the scalars the fingerprint names keep their addresses */
    Py_ssize_t k = PyTuple_GET_SIZE(fp) - 1;
    PyObject *key = PyLong_FromVoidPtr(v);
    PyObject *alive = key ? (PyList_Check(v) ? PyList_GetSlice(v, 0, k) : PyTuple_GetSlice(v, 0, k)) : NULL;
    if (alive != NULL && PyList_Check(alive)) { Py_SETREF(alive, PyList_AsTuple(alive)); }
    int rc = alive != NULL && take_snapshot(h, v, key, objs_row(h, key, v), fp, alive, shown, out, vid) == 0
             ? 1 : -1;
    Py_XDECREF(key);
    Py_XDECREF(alive);
    Py_DECREF(shown);
    Py_DECREF(fp);
    return rc;
}

/* Reads the renderer's limits, and whether capture_here may render: only
   when Renderer._render would use the compiled sequence rendering too (no
   plugin renderer, no injected fault). */
static int render_limits(Hot *h, PyObject *col) {
    PyObject *r = PyObject_GetAttrString(col, "renderer");
    if (r == NULL) { return -1; }
    PyObject *custom = PyObject_GetAttrString(r, "custom"), *fault = PyObject_GetAttrString(r, "inject_fault");
    PyObject *seq = PyObject_GetAttrString(r, "compiled_sequence");
    h->max_size = PyObject_GetAttrString(r, "max_size");
    h->max_items = PyObject_GetAttrString(r, "max_items");
    h->exc_shown = PyObject_GetAttrString(r, "_exceptions");
    h->c_kinds = PyObject_GetAttrString(r, "_c_kinds");
    h->classify = PyObject_GetAttrString(r, "c_kind");
    int ok = custom && fault && seq && h->max_size && h->max_items && h->exc_shown && h->c_kinds && h->classify;
    int truth = ok ? PyObject_IsTrue(fault) : -1;
    if (ok && truth >= 0) {
        h->render_here = custom == Py_None && truth == 0 && seq != Py_None &&
                         PyLong_CheckExact(h->max_size) && PyLong_CheckExact(h->max_items);
    }
    Py_XDECREF(custom); Py_XDECREF(fault); Py_XDECREF(seq);
    Py_DECREF(r);
    return ok && truth >= 0 ? 0 : -1;
}

static int recheck_unchanged(Hot *h, PyObject *fs, PyObject *name, PyObject *v) {
    if (PyDict_GetItemWithError(h->secret_names, name) != Py_False) { PyErr_Clear(); return 0; }
    PyObject *vid = cached_vid(h, v);
    if (vid == NULL) { return 0; }
    PyObject *seen = FS(h, fs, FS_SEEN);
    if (!PyDict_CheckExact(seen)) { return 0; }
    PyObject *was = PyDict_GetItemWithError(seen, name);
    if (was == NULL) {
        if (PyErr_Occurred() || PyDict_SetItem(seen, name, vid) < 0) { PyErr_Clear(); return 0; }
        return 1;
    }
    int same = was == vid ? 1 : PyObject_RichCompareBool(was, vid, Py_EQ);
    if (same != 1) { PyErr_Clear(); return 0; }
    return 1;
}

/* Whether ``code``'s locals are fast locals.  A class body or a module
   keeps its names in a dict (PyFrame_GetVar does not read it, and a class
   body's compiler-set names need a look at the whole dict): the Python
   side (Collector.enter, Collector.check_watch) films those frames. */
static inline int is_optimized(PyObject *code) {
    return code == NULL || !PyCode_Check(code) || (((PyCodeObject *)code)->co_flags & CO_OPTIMIZED) != 0;
}

/* A bound method called by name, or a functools.partial (of one): its own
   fingerprint never moves, its owner's may (Collector.recheck_mutable looks
   at the owner).  The partial type by name: exactly the C type, whose name
   a subclass does not have. */
static inline int is_bound_method(PyObject *v) {
    return Py_IS_TYPE(v, &PyMethod_Type) || Py_IS_TYPE(v, &PyCFunction_Type) ||
           strcmp(Py_TYPE(v)->tp_name, "functools.partial") == 0;
}

/* Collector.check_watch: a tuple of changes or None (new reference). */
static PyObject *check_watch(Hot *h, PyObject *fs, PyFrameObject *frame, PyObject *entry) {
    PyObject *last = FS(h, fs, FS_LAST), *fid = FS(h, fs, FS_FRAME_ID);
    if (!is_optimized(FS(h, fs, FS_CODE)) || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !PyTuple_CheckExact(PyTuple_GET_ITEM(entry, 0)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(entry, 1)) ||
        !PyDict_CheckExact(last)) {
        PyObject *cargs[3] = {fs, (PyObject *)frame, entry};
        return PyObject_Vectorcall(h->check_watch, cargs, 3, NULL);
    }
    PyObject *bound = PyTuple_GET_ITEM(entry, 0), *mutated = PyTuple_GET_ITEM(entry, 1);
#if ESCOPE_FRAME_VARS
    PyObject *loc = NULL;  /* made only for Collector.recheck_mutable */
#define WATCHED_VALUE(name) frame_var(frame, name)
#else
    PyObject *loc = PyFrame_GetLocals(frame);
    if (loc == NULL) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) { PyErr_Clear(); Py_RETURN_NONE; }
        return NULL;
    }
#define WATCHED_VALUE(name) local_value(loc, name)
#endif
    PyObject *out = PyList_New(0);
    if (out == NULL) { Py_XDECREF(loc); return NULL; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(bound); i++) {
        PyObject *name = PyTuple_GET_ITEM(bound, i);
        PyObject *v = WATCHED_VALUE(name);
        if (v == NULL) {
            if (PyErr_Occurred()) { goto error; }
            int had = PyDict_Contains(last, name);
            if (had < 0) { goto error; }
            if (had && (PyDict_DelItem(last, name) < 0 || append_item(out, s_tag_b, fid, name, Py_None) < 0)) {
                goto error;
            }
            continue;
        }
        int changed = identity_changed(last, name, v);
        if (changed < 0 || (changed && bind(h, fs, fid, name, v, out) < 0)) { Py_DECREF(v); goto error; }
        Py_DECREF(v);
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mutated); i++) {
        PyObject *name = PyTuple_GET_ITEM(mutated, i);
        PyObject *v = WATCHED_VALUE(name);
        if (v == NULL) {
            if (PyErr_Occurred()) { goto error; }
            continue;
        }
        int changed = identity_changed(last, name, v);
        int rc = 0;
        if (changed < 0) {
            rc = -1;
        } else if (changed) {
            rc = bind(h, fs, fid, name, v, out);
        } else if (!is_immutable(h, v) && (is_bound_method(v) || !recheck_unchanged(h, fs, name, v))) {
#if ESCOPE_FRAME_VARS
            if (loc == NULL && (loc = frame_vars_of(frame, last)) == NULL) { Py_DECREF(v); goto error; }
#endif
            PyObject *args[5] = {fs, loc, name, v, out};
            PyObject *r = PyObject_Vectorcall(h->recheck_mutable, args, 5, NULL);
            if (r == NULL) { rc = -1; } else { Py_DECREF(r); }
        }
        Py_DECREF(v);
        if (rc < 0) { goto error; }
    }
    Py_XDECREF(loc);
    if (PyList_GET_SIZE(out) == 0) { Py_DECREF(out); Py_RETURN_NONE; }
    PyObject *result = PyList_AsTuple(out);
    Py_DECREF(out);
    return result;
error:
    Py_XDECREF(loc);
    Py_DECREF(out);
    return NULL;
}
#undef WATCHED_VALUE

/* -- LINE ------------------------------------------------------------------ */

static PyObject *Hot_line(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { return fallback(h->py_line, args, nargs); }
    PyObject *code = args[0], *line = args[1];
    PyObject *ts = thread_state(h);
    PyObject *fs = ts ? top_for(h, ts, code) : NULL;
    if (fs == NULL || !fs_complete(h, fs) || FS(h, fs, FS_EXC_PENDING) != Py_False) {
        return fallback(h->py_line, args, nargs);
    }
    Py_INCREF(fs);
    PyObject *changes = NULL;
    PyObject *prev = FS(h, fs, FS_PREV);
    if (prev != Py_None) {
        int truth = PyObject_IsTrue(prev);
        if (truth < 0) { goto error; }
        if (truth) {
            PyFrameObject *frame = PyEval_GetFrame();
            if (frame == NULL) { goto error; }
            changes = check_watch(h, fs, frame, prev);
            if (changes == NULL) { goto error; }
        }
    }
    long long act_v, line_v;
    if (!int64_of(FS(h, fs, FS_ACT), &act_v) || !int64_of(line, &line_v)) { goto error; }
    if (log_push(LOG(h), K_LINE, act_v, line_v, escope_now() - h->t0, NULL, changes) < 0) { goto error; }
    if (changes != NULL && changes != Py_None) { untrack_deep(changes, 2); }
    PyObject *watch = FS(h, fs, FS_WATCH);
    PyObject *next = PyDict_CheckExact(watch) ? PyDict_GetItemWithError(watch, line) : NULL;
    if (next == NULL) {
        if (PyErr_Occurred()) { goto error; }
        next = Py_None;
    }
    Py_INCREF(next);
    if (h->full) {
        PyObject *ms = PyObject_GetAttr(FS(h, fs, FS_INFO), s_method_self);
        if (ms == NULL) { Py_DECREF(next); goto error; }
        int is_method = PyObject_IsTrue(ms);
        Py_DECREF(ms);
        if (is_method) {
            PyObject *w = PyObject_CallOneArg(h->with_self, next);
            Py_DECREF(next);
            if (w == NULL) { goto error; }
            next = w;
        }
    }
    set_slot(fs, h->fs_off[FS_PREV], next);
    Py_DECREF(next);
    if (LOG(h)->n >= h->limit && maybe_spill(h, -1) < 0) { goto error; }
    Py_XDECREF(changes);
    Py_DECREF(fs);
    Py_RETURN_NONE;
error:
    Py_XDECREF(changes);
    Py_DECREF(fs);
    return failed(h, msg_line);
}

/* The CodeInfo of ``code`` when it is in scope (borrowed), else NULL;
   an error is cleared (the event is then not filmed here). */
static PyObject *code_info(Hot *h, PyObject *code) {
    size_t slot = ((uintptr_t)code >> 4) % INFO_SLOTS;
    if (h->info_code[slot] == code) { return h->info_info[slot]; }
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) { PyErr_Clear(); return NULL; }
    PyObject *info = PyDict_GetItemWithError(h->infos, key);
    Py_DECREF(key);
    if (info == NULL) {
        PyErr_Clear();
        return NULL;
    }
    /* an entry of ``infos`` never changes: remembered here, the next event
       of this code makes no int and no dict lookup */
    Py_INCREF(code);
    Py_INCREF(info);
    Py_XSETREF(h->info_code[slot], code);
    Py_XSETREF(h->info_info[slot], info);
    return info;
}

/* -- JUMP -------------------------------------------------------------------- */

/* A backward jump that stays on one line (a comprehension's or a one-line
   loop's next iteration) is a step of its own, as settrace sees it; any
   other jump is disabled where it is.  The step is Hot_line's. */
static PyObject *Hot_jump(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyLong_CheckExact(args[1]) || !PyLong_CheckExact(args[2])) {
        return fallback(h->py_jump, args, nargs);
    }
    Py_ssize_t src = PyLong_AsSsize_t(args[1]), dest = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) { PyErr_Clear(); return fallback(h->py_jump, args, nargs); }
    if (dest > src) { return Py_NewRef(h->disable); }
    PyObject *code = args[0];
    if (code_info(h, code) == NULL) { return Py_NewRef(h->disable); }
    PyObject *to_line = cached_line(code, dest);
    PyObject *from_line = to_line ? cached_line(code, src) : NULL;
    if (from_line == NULL) {
        Py_XDECREF(to_line);
        return fallback(h->py_jump, args, nargs);
    }
    long to = PyLong_AsLong(to_line), from = PyLong_AsLong(from_line);
    Py_DECREF(from_line);
    if (to == -1 || to != from) {
        PyErr_Clear();
        Py_DECREF(to_line);
        return Py_NewRef(h->disable);
    }
    PyObject *largs[2] = {code, to_line};
    PyObject *result = Hot_line(h, largs, 2);
    Py_DECREF(to_line);
    return result;
}

/* -- PY_START ------------------------------------------------------------------ */

/* A call of in-scope code (Collector.enter for CALL): a new FrameState,
   its arguments, a new activation.  The first call of a code object (the
   scope decision), a coroutine (its task), a thread not seen yet and a
   code object without its id yet go to the Python callback. */
static PyObject *Hot_start(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !is_optimized(args[0])) { return fallback(h->py_start, args, nargs); }
    PyObject *code = args[0];
    PyObject *info = code_info(h, code);
    PyObject *ts = info ? thread_state(h) : NULL;
    PyFrameObject *frame = ts ? PyEval_GetFrame() : NULL;
    if (frame == NULL) { return fallback(h->py_start, args, nargs); }
    PyObject *flag = PyObject_GetAttr(h->col, s_active);
    int active = flag ? PyObject_IsTrue(flag) : -1;
    Py_XDECREF(flag);
    if (active <= 0) {
        PyErr_Clear();
        return fallback(h->py_start, args, nargs);
    }
    PyObject *coro = PyObject_GetAttr(info, s_is_coro);
    int is_coro = coro ? PyObject_IsTrue(coro) : -1;
    Py_XDECREF(coro);
    if (is_coro != 0) {
        PyErr_Clear();
        return fallback(h->py_start, args, nargs);
    }
    /* Collector.code_ids: id(code) -> (code, code_id) */
    PyObject *ckey = PyLong_FromVoidPtr(code);
    PyObject *centry = ckey ? PyDict_GetItemWithError(h->code_ids, ckey) : NULL;
    Py_XDECREF(ckey);
    if (centry == NULL || !PyTuple_CheckExact(centry) || PyTuple_GET_SIZE(centry) != 2 ||
        PyTuple_GET_ITEM(centry, 0) != code) {
        PyErr_Clear();
        return fallback(h->py_start, args, nargs);
    }
    PyObject *code_id = PyTuple_GET_ITEM(centry, 1);
    PyObject *stack = TS(h, ts, TS_STACK), *thread = TS(h, ts, TS_THREAD_ID), *ts_task = TS(h, ts, TS_TASK);
    if (stack == NULL || !PyList_CheckExact(stack) || thread == NULL || ts_task == NULL) {
        return fallback(h->py_start, args, nargs);
    }
    Py_ssize_t depth_n = PyList_GET_SIZE(stack);
    PyObject *parent = depth_n > 0 ? PyList_GET_ITEM(stack, depth_n - 1) : NULL;
    if (parent != NULL && (!Py_IS_TYPE(parent, h->fs_type) || !fs_complete(h, parent))) {
        return fallback(h->py_start, args, nargs);
    }
    PyObject *watch = PyObject_GetAttr(info, s_watch);
    if (watch == NULL) { PyErr_Clear(); return fallback(h->py_start, args, nargs); }
    /* from here on the state changes: errors are faults, no fallback */
    Py_INCREF(ts);
    Py_XINCREF(parent);
    PyObject *fid = NULL, *fs = NULL, *out = NULL, *loc = NULL, *items = NULL, *act = NULL,
             *depth = NULL, *item = NULL, *payload = NULL;
    fid = PyIter_Next(h->frame_ids);
    if (fid == NULL) { goto error; }
    fs = h->fs_type->tp_alloc(h->fs_type, 0);
    if (fs == NULL) { goto error; }
    PyObject *last = PyDict_New(), *seen = PyDict_New();
    if (last == NULL || seen == NULL) { Py_XDECREF(last); Py_XDECREF(seen); goto error; }
    PyObject *task = parent != NULL ? FS(h, parent, FS_TASK) : ts_task;
    depth = parent != NULL ? PyNumber_Add(FS(h, parent, FS_DEPTH), one) : Py_NewRef(zero);
    act = PyIter_Next(h->act_ids);
    if (depth == NULL || act == NULL) { Py_DECREF(last); Py_DECREF(seen); goto error; }
    set_slot(fs, h->fs_off[FS_FRAME_ID], fid);
    set_slot(fs, h->fs_off[FS_INFO], info);
    set_slot(fs, h->fs_off[FS_CODE], code);
    set_slot(fs, h->fs_off[FS_WATCH], watch);
    set_slot(fs, h->fs_off[FS_PREV], Py_None);
    set_slot(fs, h->fs_off[FS_LAST], last);
    set_slot(fs, h->fs_off[FS_SEEN], seen);
    Py_DECREF(last);
    Py_DECREF(seen);
    set_slot(fs, h->fs_off[FS_ACT], act);
    set_slot(fs, h->fs_off[FS_DEPTH], depth);
    set_slot(fs, h->fs_off[FS_THREAD], thread);
    set_slot(fs, h->fs_off[FS_TASK], task);
    set_slot(fs, h->fs_off[FS_EXC_PENDING], Py_False);
    set_slot(fs, h->fs_off[FS_PARENT], parent != NULL ? parent : Py_None);
    out = PyList_New(0);  /* the argument items */
    if (out == NULL) { goto error; }
    /* its arguments: Collector.capture_locals */
#if ESCOPE_FRAME_VARS
    items = frame_items(frame);
    if (items == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) { goto error; }
        PyErr_Clear();
    }
#else
    loc = PyFrame_GetLocals(frame);
    if (loc == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) { goto error; }
        PyErr_Clear();
    } else {
        items = PyDict_CheckExact(loc) ? PyDict_Items(loc) : PyMapping_Items(loc);
        if (items == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) { goto error; }
            PyErr_Clear();
        }
    }
#endif
    for (Py_ssize_t i = 0; items != NULL && i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) { continue; }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name)) { continue; }
        if (PyUnicode_GET_LENGTH(name) > 0) {
            Py_UCS4 c0 = PyUnicode_READ_CHAR(name, 0);
            if (c0 == '@' || c0 == '.') { continue; }
        }
        PyObject *id = PyLong_FromVoidPtr(v);
        if (id == NULL || PyDict_SetItem(last, name, id) < 0) { Py_XDECREF(id); goto error; }
        Py_DECREF(id);
        if (bind(h, fs, fid, name, v, out) < 0) { goto error; }
    }
    if (PyList_Append(stack, fs) < 0) { goto error; }
    PyObject *parent_act = parent != NULL ? FS(h, parent, FS_ACT) : Py_None;
    int64_t t = escope_now() - h->t0, act_v, line_v = ((PyCodeObject *)code)->co_firstlineno;
    ResumeRow row;
    if (compact_int(act, 0, &act_v) && compact_int(fid, 0, &row.frame) && compact_int(parent_act, 1, &row.parent) &&
        compact_int(thread, 0, &row.thread) && compact_int(task, 1, &row.task) &&
        compact_int(depth, 0, &row.depth) && PyLong_CheckExact(code_id)) {
        /* FORM_CALL: the frame and activation items as integers */
        if (PyList_GET_SIZE(out) > 0) {
            if ((payload = PyList_AsTuple(out)) == NULL) { goto error; }
            untrack_deep(payload, 2);
        }
        if (log_push_row(LOG(h), K_CALL, FORM_CALL, act_v, line_v, t, row, code_id, payload) < 0) { goto error; }
    } else {
        /* ints beyond 64 bits: (("F", frame, code), *arguments, ("A", ...)) */
        item = PyTuple_Pack(3, s_tag_F, fid, code_id);
        if (item == NULL || PyList_Insert(out, 0, item) < 0) { goto error; }
        Py_CLEAR(item);
        item = PyTuple_Pack(7, s_tag_A, act, fid, parent_act, thread, task, depth);
        if (item == NULL || PyList_Append(out, item) < 0) { goto error; }
        payload = PyList_AsTuple(out);
        if (payload == NULL) { goto error; }
        untrack_deep(payload, 2);
        long long act_ll;
        if (!int64_of(act, &act_ll) || log_push(LOG(h), K_CALL, act_ll, line_v, t, NULL, payload) < 0) {
            goto error;
        }
    }
    if (maybe_spill(h, t) < 0) { goto error; }
    Py_XDECREF(payload); Py_XDECREF(item); Py_XDECREF(items); Py_XDECREF(loc); Py_DECREF(out);
    Py_DECREF(depth); Py_DECREF(act); Py_DECREF(fs); Py_DECREF(fid);
    Py_DECREF(watch); Py_XDECREF(parent); Py_DECREF(ts);
    Py_RETURN_NONE;
error:
    Py_XDECREF(payload); Py_XDECREF(item); Py_XDECREF(items); Py_XDECREF(loc); Py_XDECREF(out);
    Py_XDECREF(depth); Py_XDECREF(act); Py_XDECREF(fs); Py_XDECREF(fid);
    Py_DECREF(watch); Py_XDECREF(parent); Py_DECREF(ts);
    return failed(h, msg_start);
}

/* -- CALL (full_trace): a call from filmed code into code out of scope ----------- */

/* The name a call into code out of scope is filmed with: the callable's
   own __qualname__ for a function, a method or a builtin (read through
   their C getters: no user code), else its class's qualified name
   (monitoring._callable_name; new reference). */
static PyObject *callable_name(PyObject *obj) {
    PyTypeObject *t = Py_TYPE(obj);
    if (t == &PyFunction_Type || t == &PyMethod_Type || t == &PyCFunction_Type ||
        t == &PyMethodDescr_Type || t == &PyWrapperDescr_Type) {
        PyObject *q = PyObject_GetAttr(obj, s_qualname);
        if (q != NULL && PyUnicode_CheckExact(q)) { return q; }
        Py_XDECREF(q);
        PyErr_Clear();
    }
    PyObject *q = PyType_GetQualName(t);
    if (q == NULL) {
        PyErr_Clear();
        q = PyUnicode_FromString("?");
    }
    return q;
}

static PyObject *Hot_call(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) { return fallback(h->py_call, args, nargs); }
    PyObject *code = args[0], *callable = args[2];
    PyTypeObject *ct = Py_TYPE(callable);
    PyObject *target = NULL;
    if (ct == &PyFunction_Type) {
        target = PyFunction_GET_CODE(callable);
    } else if (ct == &PyMethod_Type) {
        PyObject *func = PyMethod_GET_FUNCTION(callable);
        if (Py_TYPE(func) != &PyFunction_Type) { return fallback(h->py_call, args, nargs); }
        target = PyFunction_GET_CODE(func);
    } else if (strcmp(ct->tp_name, "function") == 0 || strcmp(ct->tp_name, "method") == 0) {
        return fallback(h->py_call, args, nargs);  /* a class of that name: Python decides */
    }
    if (target != NULL) {
        if (code_info(h, target) != NULL) { Py_RETURN_NONE; }  /* filmed itself */
        PyObject *key = PyLong_FromVoidPtr(target);
        PyObject *known = key ? PyDict_GetItemWithError(h->outside, key) : NULL;
        Py_XDECREF(key);
        if (known != target) {
            /* not judged yet (called before its first PY_START): Python asks the scope */
            PyErr_Clear();
            return fallback(h->py_call, args, nargs);
        }
    }
    PyObject *ts = thread_state(h);
    PyObject *fs = ts ? top_for(h, ts, code) : NULL;
    if (fs == NULL || !fs_complete(h, fs)) { return fallback(h->py_call, args, nargs); }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) { return fallback(h->py_call, args, nargs); }
    int64_t act_v;
    if (!compact_int(FS(h, fs, FS_ACT), 0, &act_v)) { return fallback(h->py_call, args, nargs); }
    PyObject *name = callable_name(callable);
    PyObject *vid = name ? PyIter_Next(h->vids) : NULL;
    PyObject *item = vid ? PyTuple_Pack(3, s_tag_r, vid, name) : NULL;
    PyObject *payload = item ? PyTuple_Pack(1, item) : NULL;
    int rc = -1;
    if (payload != NULL) {
        untrack_deep(payload, 2);
        int line = PyFrame_GetLineNumber(frame);
        rc = log_push(LOG(h), K_EXTERNAL_CALL, act_v, line < 0 ? LINE_NONE : line, escope_now() - h->t0,
                      vid, payload);
    }
    Py_XDECREF(payload); Py_XDECREF(item); Py_XDECREF(vid); Py_XDECREF(name);
    if (rc < 0) { return failed(h, msg_call); }
    Py_RETURN_NONE;
}

/* -- PY_RESUME --------------------------------------------------------------- */

static PyObject *Hot_resume(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { return fallback(h->py_resume, args, nargs); }
    PyObject *code = args[0];
    PyObject *info = code_info(h, code);
    if (info == NULL) { Py_RETURN_NONE; }
    PyObject *ts = thread_state(h);
    PyFrameObject *frame = PyEval_GetFrame();
    if (ts == NULL || frame == NULL) { return fallback(h->py_resume, args, nargs); }
    PyObject *flag = PyObject_GetAttr(h->col, s_active);
    if (flag == NULL) { PyErr_Clear(); return fallback(h->py_resume, args, nargs); }
    int active = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (active <= 0) {
        if (active < 0) { PyErr_Clear(); }
        Py_RETURN_NONE;
    }
    PyObject *coro = PyObject_GetAttr(info, s_is_coro);
    if (coro == NULL) { PyErr_Clear(); return fallback(h->py_resume, args, nargs); }
    int is_coro = PyObject_IsTrue(coro);
    Py_DECREF(coro);
    if (is_coro != 0) {
        if (is_coro < 0) { PyErr_Clear(); }
        return fallback(h->py_resume, args, nargs);
    }
    PyObject *fkey = PyLong_FromVoidPtr(frame);
    if (fkey == NULL) { return NULL; }
    PyObject *fs = PyDict_GetItemWithError(h->suspended, fkey);
    if (fs == NULL || !Py_IS_TYPE(fs, h->fs_type) || FS(h, fs, FS_CODE) != code || !fs_complete(h, fs)) {
        Py_DECREF(fkey);
        PyErr_Clear();
        return fallback(h->py_resume, args, nargs);
    }
    /* from here on the state changes: errors are faults, no fallback */
    Py_INCREF(fs);
    Py_INCREF(ts);
    PyObject *act = NULL, *line = NULL, *depth = NULL, *arow = NULL, *payload = NULL;
    PyObject *parent = Py_None, *parent_act = Py_None, *task;
    if (PyDict_DelItem(h->suspended, fkey) < 0) { Py_DECREF(fkey); goto error; }
    Py_DECREF(fkey);
    line = line_at(code, args[1], frame);
    act = PyIter_Next(h->act_ids);
    if (line == NULL || act == NULL) { goto error; }
    PyObject *stack = TS(h, ts, TS_STACK);
    if (stack == NULL || !PyList_CheckExact(stack)) { goto error; }
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (n > 0) {
        parent = PyList_GET_ITEM(stack, n - 1);
        if (!Py_IS_TYPE(parent, h->fs_type) || !fs_complete(h, parent)) { goto error; }
        depth = PyNumber_Add(FS(h, parent, FS_DEPTH), one);
        task = FS(h, parent, FS_TASK);
        parent_act = FS(h, parent, FS_ACT);
    } else {
        depth = Py_NewRef(zero);
        task = TS(h, ts, TS_TASK);
        if (task == NULL) { goto error; }
    }
    if (depth == NULL) { goto error; }
    Py_INCREF(task);
    Py_INCREF(parent_act);
    PyObject *thread = TS(h, ts, TS_THREAD_ID);
    if (thread == NULL) { Py_DECREF(task); Py_DECREF(parent_act); goto error; }
    set_slot(fs, h->fs_off[FS_ACT], act);
    set_slot(fs, h->fs_off[FS_PARENT], parent);
    set_slot(fs, h->fs_off[FS_DEPTH], depth);
    set_slot(fs, h->fs_off[FS_THREAD], thread);
    set_slot(fs, h->fs_off[FS_TASK], task);
    PyObject *watch = FS(h, fs, FS_WATCH);
    PyObject *next = PyDict_CheckExact(watch) ? PyDict_GetItemWithError(watch, line) : NULL;
    if (next == NULL) {
        if (PyErr_Occurred()) { Py_DECREF(task); Py_DECREF(parent_act); goto error; }
        next = Py_None;
    }
    set_slot(fs, h->fs_off[FS_PREV], next);
    set_slot(fs, h->fs_off[FS_EXC_PENDING], Py_False);
    if (PyList_Append(stack, fs) < 0) { Py_DECREF(task); Py_DECREF(parent_act); goto error; }
    int64_t t = escope_now() - h->t0;
    int64_t act_v, line_v;
    ResumeRow row;
    if (compact_int(act, 0, &act_v) && compact_int(line, 0, &line_v) &&
        compact_int(FS(h, fs, FS_FRAME_ID), 0, &row.frame) && compact_int(parent_act, 1, &row.parent) &&
        compact_int(thread, 0, &row.thread) && compact_int(task, 1, &row.task) &&
        compact_int(depth, 0, &row.depth)) {
        /* the activation's integers, with no tuple made for them */
        Py_DECREF(task);
        Py_DECREF(parent_act);
        if (log_push_row(LOG(h), K_RESUME, FORM_RESUME, act_v, line_v, t, row, NULL, NULL) < 0) { goto error; }
    } else {
        arow = PyTuple_Pack(7, s_tag_A, act, FS(h, fs, FS_FRAME_ID), parent_act, thread, task, depth);
        Py_DECREF(task);
        Py_DECREF(parent_act);
        payload = arow ? PyTuple_Pack(1, arow) : NULL;
        if (payload == NULL) { goto error; }
        untrack_deep(payload, 2);
        if (!compact_int(act, 0, &act_v) || !compact_int(line, 1, &line_v) ||
            log_push(LOG(h), K_RESUME, act_v, line_v, t, NULL, payload) < 0) { goto error; }
    }
    if (maybe_spill(h, t) < 0) { goto error; }
    Py_XDECREF(payload); Py_XDECREF(arow);
    Py_DECREF(depth); Py_DECREF(act); Py_DECREF(line);
    Py_DECREF(fs); Py_DECREF(ts);
    Py_RETURN_NONE;
error:
    Py_XDECREF(payload); Py_XDECREF(arow);
    Py_XDECREF(depth); Py_XDECREF(act); Py_XDECREF(line);
    Py_DECREF(fs); Py_DECREF(ts);
    return failed(h, msg_resume);
}

/* -- PY_YIELD / PY_RETURN ------------------------------------------------------ */

static PyObject *leave(Hot *h, PyObject *const *args, Py_ssize_t nargs, PyObject *kind,
                       PyObject *py, PyObject *msg) {
    if (nargs != 3) { return fallback(py, args, nargs); }
    PyObject *code = args[0], *value = args[2];
    PyObject *ts = thread_state(h);
    PyObject *fs = ts ? top_for(h, ts, code) : NULL;
    if (fs == NULL || !fs_complete(h, fs)) { return fallback(py, args, nargs); }
    /* The value of a function whose name is not secret is filmed here when
       it is an immutable scalar, or when capture_here takes it and no
       statement's changes come first (those need check_watch before it). */
    PyObject *secret = PyDict_GetItemWithError(h->secret_names, ((PyCodeObject *)code)->co_name);
    if (secret != Py_False) {
        PyErr_Clear();
        return fallback(py, args, nargs);
    }
    PyObject *prev = FS(h, fs, FS_PREV);
    /* compared by pointer: hashing the type would run a metaclass's __hash__ */
    int scalar = is_immutable(h, value);
    if (!scalar && h->record_lines && prev != Py_None) { return fallback(py, args, nargs); }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) { return fallback(py, args, nargs); }
    PyObject *vid = NULL, *taken = NULL;
    if (!scalar) {
        taken = PyList_New(0);
        int rc = taken ? capture_here(h, value, taken, &vid) : -1;
        if (rc <= 0) {
            Py_XDECREF(taken);
            if (rc < 0) { return failed(h, msg); }
            return fallback(py, args, nargs);
        }
    }
    Py_INCREF(fs);
    Py_INCREF(ts);
    PyObject *changes = NULL, *item = NULL, *payload = NULL, *line = NULL;
    if (h->record_lines && prev != Py_None) {
        int truth = PyObject_IsTrue(prev);
        if (truth < 0) { goto error; }
        if (truth) {
            changes = check_watch(h, fs, frame, prev);
            if (changes == NULL) { goto error; }
        }
    }
    set_slot(fs, h->fs_off[FS_PREV], Py_None);
    int with_changes = changes != NULL && changes != Py_None && PyTuple_CheckExact(changes);
    if (!scalar) {
        /* a captured value: (kind, act, line, t, vid, its snapshot or None) */
        if (PyList_GET_SIZE(taken) > 0 && (payload = PyList_AsTuple(taken)) == NULL) { goto error; }
    } else if (!with_changes) {
        /* the value alone: FORM_SCALAR, no tuple made for it */
    } else if ((item = PyTuple_Pack(2, s_tag_R, value)) == NULL) {
        goto error;
    } else {
        Py_ssize_t n = PyTuple_GET_SIZE(changes);
        payload = PyTuple_New(n + 1);
        if (payload == NULL) { goto error; }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(payload, i, Py_NewRef(PyTuple_GET_ITEM(changes, i)));
        }
        PyTuple_SET_ITEM(payload, n, Py_NewRef(item));
    }
    PyObject *stack = TS(h, ts, TS_STACK);
    if (stack == NULL || !PyList_CheckExact(stack)) { goto error; }
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (n > 0 && PyList_GET_ITEM(stack, n - 1) == fs) {
        if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) { goto error; }
    } else {
        /* the frame is deeper in the stack: cut it and everything above */
        for (Py_ssize_t i = n - 1; i >= 0; i--) {
            if (PyList_GET_ITEM(stack, i) == fs) {
                if (PyList_SetSlice(stack, i, n, NULL) < 0) { goto error; }
                break;
            }
        }
    }
    if (kind == k_yield) {
        PyObject *fkey = PyLong_FromVoidPtr(frame);
        if (fkey == NULL || PyDict_SetItem(h->suspended, fkey, fs) < 0) { Py_XDECREF(fkey); goto error; }
        Py_DECREF(fkey);
    }
    line = line_at(code, args[1], frame);
    if (line == NULL) { goto error; }
    int64_t act_v, line_v;
    if (!compact_int(FS(h, fs, FS_ACT), 0, &act_v) || !compact_int(line, 0, &line_v)) { goto error; }
    int k = kind == k_yield ? K_YIELD : K_RETURN;
    int64_t t = escope_now() - h->t0;
    if (payload != NULL) {
        untrack_deep(payload, 2);
        if (log_push(LOG(h), k, act_v, line_v, t, vid, payload) < 0) { goto error; }
    } else if (!scalar) {
        if (log_push(LOG(h), k, act_v, line_v, t, vid, NULL) < 0) { goto error; }
    } else if (log_push_scalar(LOG(h), k, act_v, line_v, t, value) < 0) {
        goto error;
    }
    Py_DECREF(line); Py_XDECREF(payload); Py_XDECREF(item);
    Py_XDECREF(changes); Py_XDECREF(vid); Py_XDECREF(taken);
    Py_DECREF(fs); Py_DECREF(ts);
    Py_RETURN_NONE;
error:
    Py_XDECREF(line); Py_XDECREF(payload); Py_XDECREF(item);
    Py_XDECREF(changes); Py_XDECREF(vid); Py_XDECREF(taken);
    Py_DECREF(fs); Py_DECREF(ts);
    return failed(h, msg);
}

static PyObject *Hot_yield(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    return leave(h, args, nargs, k_yield, h->py_yield, msg_yield);
}

static PyObject *Hot_return(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    return leave(h, args, nargs, k_return, h->py_return, msg_return);
}

/* -- RAISE: an exception in filmed code --------------------------------------- */

/* The snapshot of ``exc`` (its value id, new reference, and the ("v", ...)
   item when a new one was taken, appended to ``out``) when the renderer has
   shown an exception of its class and args before: a builtin exception
   class, args of scalars only, no attributes.  Renderer.render's reuse and
   Collector.capture's numbering, as Python does them; the fingerprint of
   such an exception is (0, len(args), *ids of args): an empty instance
   dict, then its args.  1: done; 0:
   Python decides (nothing changed); -1: an error. */
static int exception_here(Hot *h, PyObject *exc, PyObject *out, PyObject **vid) {
    PyTypeObject *cls = Py_TYPE(exc);
    if (!h->render_here || !PyExceptionInstance_Check(exc) || (cls->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
        strchr(cls->tp_name, '.') != NULL) {
        return 0;
    }
    PyBaseExceptionObject *be = (PyBaseExceptionObject *)exc;
    if (be->dict != NULL && (!PyDict_CheckExact(be->dict) || PyDict_GET_SIZE(be->dict) != 0)) { return 0; }
    PyObject *eargs = be->args;
    if (eargs == NULL || !PyTuple_CheckExact(eargs) || PyTuple_GET_SIZE(eargs) > 5) { return 0; }
    Py_ssize_t n = PyTuple_GET_SIZE(eargs);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* values._EXCEPTION_ARG_IDS: hashing these runs no user code */
        PyObject *a = PyTuple_GET_ITEM(eargs, i);
        PyTypeObject *t = Py_TYPE(a);
        if (t != &PyLong_Type && t != &PyUnicode_Type && t != &PyBytes_Type && t != &PyBool_Type && a != Py_None) {
            return 0;
        }
    }
    int rc = -1;
    PyObject *kinds = PyTuple_New(n), *cls_id = PyLong_FromVoidPtr(cls), *key = NULL, *obj_key = NULL,
             *fp = NULL;
    if (kinds == NULL || cls_id == NULL) { goto done; }
    /* values.fingerprint, packed as fingerprint_tree packs it: an empty
       __dict__, then the args' count and ids */
    uint64_t words[7];
    words[0] = 0;
    words[1] = (uint64_t)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyLong_FromVoidPtr(Py_TYPE(PyTuple_GET_ITEM(eargs, i)));
        if (k == NULL) { goto done; }
        PyTuple_SET_ITEM(kinds, i, k);
        words[i + 2] = (uint64_t)(uintptr_t)PyTuple_GET_ITEM(eargs, i);
    }
    fp = PyBytes_FromStringAndSize((const char *)words, (Py_ssize_t)((n + 2) * sizeof(uint64_t)));
    if (fp == NULL) { goto done; }
    if ((key = PyTuple_Pack(3, cls_id, eargs, kinds)) == NULL) { goto done; }
    PyObject *known = PyDict_GetItemWithError(h->exc_shown, key);
    if (known == NULL && PyErr_Occurred()) { goto done; }
    PyObject *shown = known != NULL && PyTuple_CheckExact(known) && PyTuple_GET_SIZE(known) == 2 &&
                      PyTuple_GET_ITEM(known, 0) == (PyObject *)cls ? PyTuple_GET_ITEM(known, 1) : NULL;
    if (shown == NULL || !PyTuple_CheckExact(shown) || PyTuple_GET_SIZE(shown) != 4) {
        rc = 0;  /* not shown yet: Python renders it and remembers the rendering */
        goto done;
    }
    if ((obj_key = PyLong_FromVoidPtr(exc)) == NULL) { goto done; }
    PyObject *entry = objs_row(h, obj_key, exc);
    if (entry != NULL) {
        PyObject *was = PyTuple_GET_ITEM(entry, 0);
        int same = PyBytes_CheckExact(was) && PyBytes_GET_SIZE(was) == PyBytes_GET_SIZE(fp) &&
                   memcmp(PyBytes_AS_STRING(was), PyBytes_AS_STRING(fp), (size_t)PyBytes_GET_SIZE(fp)) == 0;
        if (same) {  /* the same exception again, unchanged: its snapshot */
            *vid = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
            rc = 1;
            goto done;
        }
        /* other args at the address of the last one: a new exception
           (Collector.capture's rule), whatever the allocator reused */
        entry = NULL;
    }
    /* the args, all scalars here, are what values.kept_alive keeps */
    rc = take_snapshot(h, exc, obj_key, entry, fp, eargs, shown, out, vid) == 0 ? 1 : -1;
done:
    Py_XDECREF(kinds); Py_XDECREF(cls_id); Py_XDECREF(key); Py_XDECREF(obj_key); Py_XDECREF(fp);
    return rc;
}

/* Collector.step_count: base + segmented + len(events).  Read here in one
   go, with the GIL held and no Python code run, unless the flusher thread is
   in the middle of moving events into a chunk (``moving`` odd): then the
   Python method waits for the move to end. */
static int step_count(Hot *h, int64_t *step) {
    long long base, segmented, moving;
    PyObject *m = PyObject_GetAttr(h->col, s_moving);
    int ok_m = m != NULL && int64_of(m, &moving);
    Py_XDECREF(m);
    if (!ok_m) {
        if (!PyErr_Occurred()) { PyErr_SetString(PyExc_TypeError, "Collector.moving is not an int"); }
        return -1;
    }
    if (moving & 1) {
        PyObject *n = PyObject_CallMethodNoArgs(h->col, s_step_count);
        long long v;
        int ok_n = n != NULL && int64_of(n, &v);
        Py_XDECREF(n);
        if (!ok_n) {
            if (!PyErr_Occurred()) { PyErr_SetString(PyExc_TypeError, "Collector.step_count is not an int"); }
            return -1;
        }
        *step = (int64_t)v;
        return 0;
    }
    PyObject *b = PyObject_GetAttr(h->col, s_base), *s = b ? PyObject_GetAttr(h->col, s_segmented) : NULL;
    int ok = s != NULL && int64_of(b, &base) && int64_of(s, &segmented);
    Py_XDECREF(b);
    Py_XDECREF(s);
    if (!ok) {
        if (!PyErr_Occurred()) { PyErr_SetString(PyExc_TypeError, "Collector.base or segmented is not an int"); }
        return -1;
    }
    *step = (int64_t)(base + segmented) + LOG(h)->n;
    return 0;
}

/* Collector.exception(fs, EXCEPTION, line, exc) when exception_here can
   take the snapshot; 0 when Python must. */
static int exception_event(Hot *h, PyObject *fs, PyObject *exc, int line) {
    PyObject *out = PyList_New(0), *vid = NULL, *payload = NULL, *row = NULL, *name = NULL;
    int rc = out ? exception_here(h, exc, out, &vid) : -1;
    if (rc <= 0) { Py_XDECREF(out); return rc; }
    rc = -1;
    int64_t step;
    long long act;
    if (step_count(h, &step) < 0 || !int64_of(FS(h, fs, FS_ACT), &act)) { goto done; }
    name = PyUnicode_FromString(Py_TYPE(exc)->tp_name);  /* a builtin class: its qualname */
    PyObject *step_obj = name ? PyLong_FromLongLong(step) : NULL, *eid = step_obj ? PyLong_FromVoidPtr(exc) : NULL;
    row = eid ? PyTuple_Pack(3, step_obj, eid, name) : NULL;
    Py_XDECREF(step_obj);
    Py_XDECREF(eid);
    if (row == NULL || PyList_Append(h->exc_log, row) < 0 || (payload = PyList_AsTuple(out)) == NULL) { goto done; }
    untrack_deep(payload, 2);
    if (log_push(LOG(h), K_EXCEPTION, act, line, escope_now() - h->t0, vid, payload) < 0) { goto done; }
    rc = 1;
done:
    Py_DECREF(out); Py_XDECREF(vid); Py_XDECREF(payload); Py_XDECREF(row); Py_XDECREF(name);
    return rc;
}

/* monitoring.on_raise.  RAISE fires in every frame an exception passes;
   the film keeps the frame that raised it, where its traceback has one
   entry. */
static PyObject *Hot_raise(Hot *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { Py_RETURN_NONE; }
    PyObject *code = args[0], *exc = args[2];
    if (code_info(h, code) == NULL) { Py_RETURN_NONE; }
    /* the iteration protocol's own ends are no failure (monitoring._ITERATION_END) */
    if (Py_IS_TYPE(exc, (PyTypeObject *)PyExc_StopIteration) ||
        Py_IS_TYPE(exc, (PyTypeObject *)PyExc_StopAsyncIteration)) {
        Py_RETURN_NONE;
    }
    PyObject *ts = thread_state(h);
    PyObject *fs = ts ? top_for(h, ts, code) : NULL;
    if (fs == NULL) { Py_RETURN_NONE; }
    set_slot(fs, h->fs_off[FS_EXC_PENDING], Py_True);
    if (PyExceptionInstance_Check(exc)) {
        PyObject *tb = PyException_GetTraceback(exc);
        int passing = tb != NULL && ((PyTracebackObject *)tb)->tb_next != NULL;
        Py_XDECREF(tb);
        if (passing) { Py_RETURN_NONE; }
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) { return failed(h, msg_raise); }
    int line = PyFrame_GetLineNumber(frame);
    Py_INCREF(fs);
    int rc = exception_event(h, fs, exc, line);
    if (rc == 0) {
        PyObject *line_obj = PyLong_FromLong(line), *kind = PyLong_FromLong(K_EXCEPTION);
        PyObject *call[4] = {fs, kind, line_obj, exc};
        PyObject *r = line_obj && kind ? PyObject_Vectorcall(h->exception, call, 4, NULL) : NULL;
        rc = r != NULL ? 1 : -1;
        Py_XDECREF(r); Py_XDECREF(line_obj); Py_XDECREF(kind);
    }
    Py_DECREF(fs);
    if (rc < 0) { return failed(h, msg_raise); }
    Py_RETURN_NONE;
}

/* -- the object ------------------------------------------------------------------ */

static int Hot_init(Hot *h, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"collector", "infos", "outside", "frame_state", "thread_state", "immutable",
                             "on_line", "on_resume", "on_yield", "on_return", "with_self",
                             "on_jump", "disable", "since_start_ns", "on_start", "on_call", NULL};
    PyObject *col, *infos, *outside, *fs_type, *ts_type, *immutable, *pl, *pr, *py, *pt, *ws, *pj, *dis, *ps, *pc;
    long long since_start;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O!O!O!O!OOOOOOOLOO", kwlist, &col, &PyDict_Type, &infos,
                                     &PyDict_Type, &outside,
                                     &PyType_Type, &fs_type, &PyType_Type, &ts_type,
                                     &PyFrozenSet_Type, &immutable, &pl, &pr, &py, &pt, &ws, &pj, &dis,
                                     &since_start, &ps, &pc)) {
        return -1;
    }
    h->fs_type = (PyTypeObject *)Py_NewRef(fs_type);
    h->ts_type = (PyTypeObject *)Py_NewRef(ts_type);
    if (slot_offsets(h->fs_type, FS_FIELDS, h->fs_off) < 0) { return -1; }
    if (slot_offsets(h->ts_type, TS_FIELDS, h->ts_off) < 0) { return -1; }
    h->col = Py_NewRef(col);
    h->infos = Py_NewRef(infos);
    h->outside = Py_NewRef(outside);
    h->immutable = Py_NewRef(immutable);
    h->py_line = Py_NewRef(pl);
    h->py_resume = Py_NewRef(pr);
    h->py_yield = Py_NewRef(py);
    h->py_return = Py_NewRef(pt);
    h->with_self = Py_NewRef(ws);
    h->py_jump = Py_NewRef(pj);
    h->disable = Py_NewRef(dis);
    h->py_start = Py_NewRef(ps);
    h->py_call = Py_NewRef(pc);
    h->vids = PyObject_GetAttrString(col, "vids");
    if (h->vids == NULL) { return -1; }
    h->frame_ids = PyObject_GetAttrString(col, "frame_ids");
    h->code_ids = PyObject_GetAttrString(col, "code_ids");
    if (h->frame_ids == NULL || h->code_ids == NULL) { return -1; }
    if (!PyDict_CheckExact(h->code_ids)) {
        PyErr_SetString(PyExc_TypeError, "Collector.code_ids is not a dict");
        return -1;
    }
    h->events = PyObject_GetAttrString(col, "events");
    h->threads = PyObject_GetAttrString(col, "threads");
    h->suspended = PyObject_GetAttrString(col, "suspended");
    h->act_ids = PyObject_GetAttrString(col, "act_ids");
    h->secret_names = PyObject_GetAttrString(col, "secret_names");
    h->check_watch = PyObject_GetAttrString(col, "check_watch");
    h->spill = PyObject_GetAttrString(col, "spill");
    h->overflow = PyObject_GetAttrString(col, "overflow");
    h->fault = PyObject_GetAttrString(col, "fault");
    h->owned = PyObject_GetAttrString(col, "owned_by_test");
    h->bind_changed = PyObject_GetAttrString(col, "bind_changed");
    h->recheck_mutable = PyObject_GetAttrString(col, "recheck_mutable");
    h->objs = PyObject_GetAttrString(col, "objs");
    if (!h->bind_changed || !h->recheck_mutable || !h->objs) { return -1; }
    if (!PyDict_CheckExact(h->objs)) {
        PyErr_SetString(PyExc_TypeError, "Collector.objs is not a dict");
        return -1;
    }
    h->objnums = PyObject_GetAttrString(col, "objnums");
    if (h->objnums == NULL || render_limits(h, col) < 0) { return -1; }
    h->exception = PyObject_GetAttrString(col, "exception");
    h->exc_log = h->exception ? PyObject_GetAttrString(col, "exc_log") : NULL;
    if (h->exc_log == NULL) { return -1; }
    if (!PyList_CheckExact(h->exc_log) || !PyDict_CheckExact(h->exc_shown)) {
        PyErr_SetString(PyExc_TypeError, "Collector.exc_log or Renderer._exceptions of unexpected types");
        return -1;
    }
    h->n_imm = 0;
    PyObject *it = PyObject_GetIter(immutable);
    if (it == NULL) { return -1; }
    PyObject *t;
    while ((t = PyIter_Next(it)) != NULL) {
        if (!PyType_Check(t) || h->n_imm >= 16) {
            Py_DECREF(t); Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "immutable: at most 16 types");
            return -1;
        }
        h->imm_types[h->n_imm++] = (PyTypeObject *)t;  /* kept alive by h->immutable */
        Py_DECREF(t);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) { return -1; }
    if (!h->events || !h->threads || !h->suspended || !h->act_ids || !h->secret_names ||
        !h->check_watch || !h->spill || !h->overflow || !h->fault || !h->owned) {
        return -1;
    }
    if (!Py_IS_TYPE(h->events, &EventLogType) || !PyDict_CheckExact(h->threads) ||
        !PyDict_CheckExact(h->suspended) || !PyDict_CheckExact(h->secret_names)) {
        PyErr_SetString(PyExc_TypeError, "collector state of unexpected types");
        return -1;
    }
    PyObject *v = PyObject_GetAttrString(col, "hot_limit");
    if (v == NULL) { return -1; }
    h->limit = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    if (h->limit == -1 && PyErr_Occurred()) { return -1; }
    v = PyObject_GetAttrString(col, "record_lines");
    if (v == NULL) { return -1; }
    h->record_lines = PyObject_IsTrue(v);
    Py_DECREF(v);
    v = PyObject_GetAttrString(col, "full");
    if (v == NULL) { return -1; }
    h->full = PyObject_IsTrue(v);
    Py_DECREF(v);
    h->t0 = escope_now() - (int64_t)since_start;
    h->spill_at = INT64_MIN;
    return 0;
}

/* Every object the struct holds, once: traverse and clear cannot drift apart. */
#define HOT_OBJECTS(X) \
    X(col) X(events) X(threads) X(infos) X(outside) X(suspended) X(act_ids) X(secret_names) X(immutable) \
    X(fs_type) X(ts_type) X(py_line) X(py_resume) X(py_yield) X(py_return) X(py_jump) X(disable) \
    X(py_start) X(py_call) X(vids) X(frame_ids) X(code_ids) \
    X(check_watch) \
    X(spill) X(overflow) X(fault) X(owned) X(bind_changed) X(recheck_mutable) X(objs) X(objnums) X(max_size) X(max_items) X(exception) X(exc_log) X(exc_shown) X(c_kinds) X(classify) X(with_self) X(last_ts)

static int Hot_traverse(Hot *h, visitproc visit, void *arg) {
#define VISIT_FIELD(name) Py_VISIT(h->name);
    HOT_OBJECTS(VISIT_FIELD)
#undef VISIT_FIELD
    for (int i = 0; i < INFO_SLOTS; i++) {
        Py_VISIT(h->info_code[i]);
        Py_VISIT(h->info_info[i]);
    }
    return 0;
}

static int Hot_clear(Hot *h) {
#define CLEAR_FIELD(name) Py_CLEAR(h->name);
    HOT_OBJECTS(CLEAR_FIELD)
#undef CLEAR_FIELD
    for (int i = 0; i < INFO_SLOTS; i++) {
        Py_CLEAR(h->info_code[i]);
        Py_CLEAR(h->info_info[i]);
    }
    return 0;
}

static void Hot_dealloc(Hot *h) {
    PyObject_GC_UnTrack(h);
    Hot_clear(h);
    Py_TYPE(h)->tp_free((PyObject *)h);
}

static PyMethodDef Hot_methods[] = {
    {"line", (PyCFunction)(void (*)(void))Hot_line, METH_FASTCALL, "LINE callback"},
    {"jump", (PyCFunction)(void (*)(void))Hot_jump, METH_FASTCALL, "JUMP callback"},
    {"start", (PyCFunction)(void (*)(void))Hot_start, METH_FASTCALL, "PY_START callback"},
    {"call", (PyCFunction)(void (*)(void))Hot_call, METH_FASTCALL, "CALL callback (full_trace)"},
    {"resume", (PyCFunction)(void (*)(void))Hot_resume, METH_FASTCALL, "PY_RESUME callback"},
    {"yield_", (PyCFunction)(void (*)(void))Hot_yield, METH_FASTCALL, "PY_YIELD callback"},
    {"return_", (PyCFunction)(void (*)(void))Hot_return, METH_FASTCALL, "PY_RETURN callback"},
    {"raise_", (PyCFunction)(void (*)(void))Hot_raise, METH_FASTCALL, "RAISE callback"},
    {NULL, NULL, 0, NULL},
};

static PyObject *untrack_segment(PyObject *module, PyObject *segment) {
    if (!PyTuple_CheckExact(segment)) {
        PyErr_SetString(PyExc_TypeError, "untrack_segment() takes a tuple");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(segment);
    for (Py_ssize_t i = 0; i < n; i++) {
        untrack_deep(PyTuple_GET_ITEM(segment, i), 3);
    }
    untrack_deep(segment, 0);
    Py_RETURN_NONE;
}

/* -- a chunk's integer columns as JSON text ------------------------------------------- */

static int floor_div(long long a, long long b, long long *out) {
    long long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) { q -= 1; }
    *out = q;
    return 0;
}

/* The decimal text of v at buf; returns its length (at most 20).  Two
   digits per division: the writer formats a dozen numbers per event. */
static size_t format_int(char *buf, long long v) {
    static const char pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char tmp[24];
    size_t n = sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned int r = (unsigned int)(u % 100);
        u /= 100;
        tmp[--n] = pairs[2 * r + 1];
        tmp[--n] = pairs[2 * r];
    }
    if (u >= 10) {
        tmp[--n] = pairs[2 * u + 1];
        tmp[--n] = pairs[2 * u];
    } else {
        tmp[--n] = (char)('0' + u);
    }
    size_t len = 0;
    if (v < 0) { buf[len++] = '-'; }
    memcpy(buf + len, tmp + n, sizeof(tmp) - n);
    return len + sizeof(tmp) - n;
}

/* An int's value when it fits 64 bits: 1, or 0 (no error set) when not. */
static inline int int64_of(PyObject *x, long long *out) {
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)x)) {
        *out = (long long)PyUnstable_Long_CompactValue((PyLongObject *)x);
        return 1;
    }
#endif
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
    *out = v;
    return 1;
}

/* One cell of an int column, transformed (see json_int_column), written
   at buf + *len; 0 when the cell is not one json_int_column takes. */
static inline int put_int_cell(char *buf, size_t *len, PyObject *x, long mode, long long base,
                               long long *prev, int first) {
    if (!first) { buf[(*len)++] = ','; }
    if (x == Py_None) {
        if (mode == 1 || mode == 3) { return 0; }
        memcpy(buf + *len, "null", 4);
        *len += 4;
        return 1;
    }
    if (!PyLong_CheckExact(x)) { return 0; }
    long long v;
    if (!int64_of(x, &v)) { return 0; }
    long long out = v;
    if (mode == 3) { floor_div(v, 1000, &v); out = v; }
    if (mode == 1 || mode == 3) {
        if (!first && __builtin_sub_overflow(v, *prev, &out)) { return 0; }
        *prev = v;
    } else if (mode == 2) {
        if (__builtin_sub_overflow(v, base, &out)) { return 0; }
    }
    *len += format_int(buf + *len, out);
    return 1;
}

/* The columns of a table's rows, in one pass over the rows: a row is read
   once for all its columns, not once per column (a chunk of generators
   has an activation row of eight ints per resume, scattered in memory).
   Returns a list with each column's text, or None for a column that is
   not all ints that fit 64 bits (the caller encodes that one in Python). */
static PyObject *json_int_table(PyObject *rows, PyObject *modes_obj, long long base) {
    Py_ssize_t w = PyTuple_GET_SIZE(modes_obj);
    if (w < 1 || w > 16) {
        PyErr_SetString(PyExc_ValueError, "json_int_column(): 1 to 16 modes");
        return NULL;
    }
    long modes[16];
    for (Py_ssize_t c = 0; c < w; c++) {
        modes[c] = PyLong_AsLong(PyTuple_GET_ITEM(modes_obj, c));
        if (modes[c] == -1 && PyErr_Occurred()) { return NULL; }
    }
    PyObject *seq = PySequence_Fast(rows, "json_int_column() takes a list or tuple");
    if (seq == NULL) { return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    char *buf[16] = {NULL};
    size_t len[16];
    long long prev[16];
    int ok[16];
    PyObject *out = NULL;
    for (Py_ssize_t c = 0; c < w; c++) {
        buf[c] = PyMem_Malloc((size_t)n * 22 + 3);
        if (buf[c] == NULL) { PyErr_NoMemory(); goto done; }
        buf[c][0] = '[';
        len[c] = 1;
        prev[c] = 0;
        ok[c] = 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = items[i], **cells;
        Py_ssize_t size;
        if (PyTuple_CheckExact(row)) {
            cells = &PyTuple_GET_ITEM(row, 0);
            size = PyTuple_GET_SIZE(row);
        } else if (PyList_CheckExact(row)) {
            size = PyList_GET_SIZE(row);
            cells = size ? ((PyListObject *)row)->ob_item : NULL;
        } else {
            size = 0;
            cells = NULL;
        }
        for (Py_ssize_t c = 0; c < w; c++) {
            if (!ok[c]) { continue; }
            if (c >= size || cells == NULL ||
                !put_int_cell(buf[c], &len[c], cells[c], modes[c], base, &prev[c], i == 0)) {
                ok[c] = 0;
            }
        }
    }
    out = PyList_New(w);
    for (Py_ssize_t c = 0; out != NULL && c < w; c++) {
        PyObject *text;
        if (ok[c]) {
            buf[c][len[c]++] = ']';
            text = PyUnicode_DecodeASCII(buf[c], (Py_ssize_t)len[c], NULL);
            if (text == NULL) { Py_CLEAR(out); break; }
        } else {
            text = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(out, c, text);
    }
done:
    for (Py_ssize_t c = 0; c < w; c++) { PyMem_Free(buf[c]); }
    Py_DECREF(seq);
    return out;
}

/* json_int_column(column, mode, base[, index]) -> str, or None when the
   column is not all ints that fit 64 bits (the caller then encodes it in
   Python).  With ``index``, ``column`` is a list of rows and the column is
   each row's item ``index``: no column tuple is built (a zip(*rows) of a
   long chunk made tuples of 100,000 items that every young collection of
   the garbage collector walked).  With a tuple of modes in place of
   ``mode`` (and no index), ``column`` is a list of rows and the result is
   a list: one text (or None) per mode, for the rows' first items in turn.
   The text is what schema.pack_chunk's JSON encoder writes for the column
   after its transform:
     0  as it is (None is null)
     1  differences: the first value, then each value minus the one before
     2  relative: each value minus base (None stays null)
     3  microseconds, then differences: t // 1000 for each t first
*/
static PyObject *json_int_column(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "json_int_column() takes 3 or 4 arguments");
        return NULL;
    }
    PyObject *col = args[0];
    if (nargs == 3 && PyTuple_CheckExact(args[1])) {
        long long tbase = PyLong_AsLongLong(args[2]);
        if (tbase == -1 && PyErr_Occurred()) { return NULL; }
        return json_int_table(col, args[1], tbase);
    }
    long mode = PyLong_AsLong(args[1]);
    long long base = PyLong_AsLongLong(args[2]);
    Py_ssize_t index = nargs == 4 ? PyLong_AsSsize_t(args[3]) : -1;
    if (PyErr_Occurred()) { return NULL; }
    PyObject *seq = PySequence_Fast(col, "json_int_column() takes a list or tuple");
    if (seq == NULL) { return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* at most 21 characters per number and a comma */
    size_t cap = (size_t)n * 22 + 3;
    char *buf = PyMem_Malloc(cap);
    if (buf == NULL) { Py_DECREF(seq); return PyErr_NoMemory(); }
    size_t len = 0;
    buf[len++] = '[';
    long long prev = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = items[i];
        if (index >= 0) {
            if (PyTuple_CheckExact(x) && index < PyTuple_GET_SIZE(x)) {
                x = PyTuple_GET_ITEM(x, index);
            } else if (PyList_CheckExact(x) && index < PyList_GET_SIZE(x)) {
                x = PyList_GET_ITEM(x, index);
            } else {
                goto unsupported;
            }
        }
        if (!put_int_cell(buf, &len, x, mode, base, &prev, i == 0)) { goto unsupported; }
    }
    buf[len++] = ']';
    Py_DECREF(seq);
    PyObject *text = PyUnicode_DecodeASCII(buf, (Py_ssize_t)len, NULL);
    PyMem_Free(buf);
    return text;
unsupported:
    Py_DECREF(seq);
    PyMem_Free(buf);
    Py_RETURN_NONE;
}

/* event_columns(parts, base) -> (kinds, acts, lines, times) as JSON text,
   or None.  The four event columns of a chunk whose parts are all sealed
   EventLogs, read from their arrays: the same text json_int_column writes
   for the lists split_events would have built (kinds and lines as they
   are, a line of None as null; acts as differences; times in microseconds,
   as differences).  The text is written without the GIL: a sealed log
   never changes, and the test thread runs meanwhile.  None when a part is
   not a sealed log or a difference does not fit 64 bits. */
static PyObject *event_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "event_columns() takes a tuple of EventLogs and a base");
        return NULL;
    }
    PyObject *parts = args[0];
    Py_ssize_t np = PyTuple_GET_SIZE(parts), total = 0;
    for (Py_ssize_t p = 0; p < np; p++) {
        PyObject *part = PyTuple_GET_ITEM(parts, p);
        if (!Py_IS_TYPE(part, &EventLogType) || !((EventLog *)part)->sealed) { Py_RETURN_NONE; }
        total += ((EventLog *)part)->n;
    }
    char *buf[4] = {NULL, NULL, NULL, NULL};
    size_t len[4] = {0, 0, 0, 0};
    size_t cap[4] = {(size_t)total * 4 + 3, (size_t)total * 22 + 3, (size_t)total * 21 + 3,
                     (size_t)total * 22 + 3};
    for (int c = 0; c < 4; c++) {
        buf[c] = PyMem_RawMalloc(cap[c]);
        if (buf[c] == NULL) {
            for (int d = 0; d < c; d++) { PyMem_RawFree(buf[d]); }
            return PyErr_NoMemory();
        }
    }
    int overflow = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int c = 0; c < 4; c++) { buf[c][len[c]++] = '['; }
    long long prev_act = 0, prev_us = 0;
    Py_ssize_t i = 0;
    for (Py_ssize_t p = 0; p < np && !overflow; p++) {
        const EventLog *log = (const EventLog *)PyTuple_GET_ITEM(parts, p);
        for (Py_ssize_t j = 0; j < log->n; j++, i++) {
            const Ev *e = &log->ev[j];
            if (i) {
                for (int c = 0; c < 4; c++) { buf[c][len[c]++] = ','; }
            }
            len[0] += format_int(buf[0] + len[0], e->kind);
            long long d = e->act;
            if (i && __builtin_sub_overflow((long long)e->act, prev_act, &d)) { overflow = 1; break; }
            prev_act = e->act;
            len[1] += format_int(buf[1] + len[1], d);
            if (e->line == LINE_NONE) {
                memcpy(buf[2] + len[2], "null", 4);
                len[2] += 4;
            } else {
                len[2] += format_int(buf[2] + len[2], e->line);
            }
            long long us;
            floor_div(e->t, 1000, &us);
            d = us;
            if (i && __builtin_sub_overflow(us, prev_us, &d)) { overflow = 1; break; }
            prev_us = us;
            len[3] += format_int(buf[3] + len[3], d);
        }
    }
    for (int c = 0; c < 4; c++) { buf[c][len[c]++] = ']'; }
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (!overflow) {
        out = PyTuple_New(4);
        for (int c = 0; out != NULL && c < 4; c++) {
            PyObject *text = PyUnicode_DecodeASCII(buf[c], (Py_ssize_t)len[c], NULL);
            if (text == NULL) { Py_CLEAR(out); break; }
            PyTuple_SET_ITEM(out, c, text);
        }
    } else {
        out = Py_NewRef(Py_None);
    }
    for (int c = 0; c < 4; c++) { PyMem_RawFree(buf[c]); }
    return out;
}

/* -- the writer's tables: FilmTables ------------------------------------------------ */

/* What the writer turns a chunk of events into, held as C integers: the
   rows of frames, activations, bindings and activation ends, and the
   (position, value id) pair of each event that has a value; and what it
   remembers from chunk to chunk (the file an activation or a frame runs
   in, the value id of an int it rendered before).  store._FilmTables is
   the same in Python; both write byte-identical chunks (the tests hold
   them together).

   As Python lists of tuples and dicts of int objects (store._FilmTables)
   they make and free about a dozen objects per generator step, on the
   writer thread but under the GIL, so the test thread waits for every one
   of them.  Here a generator step makes no object, and the JSON text of the
   columns is written with the GIL released. */

/* -- int64 -> int64, open addressing (two key values are reserved) -- */
#define MAP_EMPTY INT64_MIN
#define MAP_GONE (INT64_MIN + 1)
#define VAL_NONE INT64_MIN   /* a value of None: a file not known */

typedef struct { int64_t *keys, *vals; Py_ssize_t cap, used, gone; } IntMap;

static inline size_t mix64(int64_t key) {
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* The slot holding ``key``, or -1. */
static Py_ssize_t map_find(const IntMap *m, int64_t key) {
    if (m->cap == 0) { return -1; }
    size_t mask = (size_t)m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) { return (Py_ssize_t)i; }
        if (m->keys[i] == MAP_EMPTY) { return -1; }
    }
}

static inline int map_get(const IntMap *m, int64_t key, int64_t *out) {
    Py_ssize_t i = map_find(m, key);
    if (i < 0) { return 0; }
    *out = m->vals[i];
    return 1;
}

static int map_resize(IntMap *m, Py_ssize_t cap) {
    int64_t *keys = PyMem_RawMalloc((size_t)cap * sizeof(int64_t));
    int64_t *vals = PyMem_RawMalloc((size_t)cap * sizeof(int64_t));
    if (keys == NULL || vals == NULL) {
        PyMem_RawFree(keys);
        PyMem_RawFree(vals);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < cap; i++) { keys[i] = MAP_EMPTY; }
    size_t mask = (size_t)cap - 1;
    for (Py_ssize_t j = 0; j < m->cap; j++) {
        int64_t k = m->keys[j];
        if (k == MAP_EMPTY || k == MAP_GONE) { continue; }
        size_t i = mix64(k) & mask;
        while (keys[i] != MAP_EMPTY) { i = (i + 1) & mask; }
        keys[i] = k;
        vals[i] = m->vals[j];
    }
    PyMem_RawFree(m->keys);
    PyMem_RawFree(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->gone = 0;
    return 0;
}

static int map_put(IntMap *m, int64_t key, int64_t val) {
    if (key == MAP_EMPTY || key == MAP_GONE) {
        PyErr_SetString(PyExc_OverflowError, "FilmTables: an id out of range");
        return -1;
    }
    Py_ssize_t at = map_find(m, key);
    if (at >= 0) {
        m->vals[at] = val;
        return 0;
    }
    if ((m->used + m->gone + 1) * 4 > m->cap * 3) {
        /* the tombstones go; the table doubles only when it is half full */
        Py_ssize_t cap = m->cap ? m->cap : 64;
        while ((m->used + 1) * 2 > cap) { cap *= 2; }
        if (map_resize(m, cap) < 0) { return -1; }
    }
    size_t mask = (size_t)m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] != MAP_EMPTY && m->keys[i] != MAP_GONE) { i = (i + 1) & mask; }
    if (m->keys[i] == MAP_GONE) { m->gone--; }
    m->keys[i] = key;
    m->vals[i] = val;
    m->used++;
    return 0;
}

static void map_delete_at(IntMap *m, Py_ssize_t i) {
    m->keys[i] = MAP_GONE;
    m->used--;
    m->gone++;
}

static void map_clear(IntMap *m) {
    for (Py_ssize_t i = 0; i < m->cap; i++) { m->keys[i] = MAP_EMPTY; }
    m->used = m->gone = 0;
}

static void map_free(IntMap *m) {
    PyMem_RawFree(m->keys);
    PyMem_RawFree(m->vals);
    *m = (IntMap){NULL, NULL, 0, 0, 0};
}

/* -- rows of int64 cells, any of which may be null (at most 16 columns) -- */
typedef struct { int64_t *cells; uint16_t *nulls; Py_ssize_t n, cap; int w; } IntTable;

/* A new row at the end (its cells to fill in), or NULL with an exception set. */
static int64_t *table_add(IntTable *t, uint16_t nulls) {
    if (t->n == t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 256;
        int64_t *cells = PyMem_RawRealloc(t->cells, (size_t)cap * (size_t)t->w * sizeof(int64_t));
        if (cells == NULL) { PyErr_NoMemory(); return NULL; }
        t->cells = cells;
        uint16_t *marks = PyMem_RawRealloc(t->nulls, (size_t)cap * sizeof(uint16_t));
        if (marks == NULL) { PyErr_NoMemory(); return NULL; }
        t->nulls = marks;
        t->cap = cap;
    }
    t->nulls[t->n] = nulls;
    return &t->cells[t->n++ * t->w];
}

static void table_free(IntTable *t) {
    PyMem_RawFree(t->cells);
    PyMem_RawFree(t->nulls);
    t->cells = NULL;
    t->nulls = NULL;
    t->n = t->cap = 0;
}

/* Column ``c`` as JSON text after its transform (the modes of
   json_int_column) at buf; its length, or 0 when a null stands where the
   mode allows none or a difference overflows (Python writes that column).
   Touches no Python object: runs without the GIL. */
static size_t table_column_text(const IntTable *t, int c, long mode, long long base, char *buf) {
    size_t len = 0;
    long long prev = 0;
    buf[len++] = '[';
    for (Py_ssize_t i = 0; i < t->n; i++) {
        if (i) { buf[len++] = ','; }
        if (t->nulls[i] & (1u << c)) {
            if (mode == 1 || mode == 3) { return 0; }
            memcpy(buf + len, "null", 4);
            len += 4;
            continue;
        }
        long long v = t->cells[i * t->w + c], out = v;
        if (mode == 3) { floor_div(v, 1000, &v); out = v; }
        if (mode == 1 || mode == 3) {
            if (i && __builtin_sub_overflow(v, prev, &out)) { return 0; }
            prev = v;
        } else if (mode == 2) {
            if (__builtin_sub_overflow(v, base, &out)) { return 0; }
        }
        len += format_int(buf + len, out);
    }
    buf[len++] = ']';
    return len;
}

/* -- the object -- */
enum { T_FRAMES, T_ACTS, T_BINDINGS, T_ENDS, T_PAIRS, T_N };
static const int TABLE_WIDTH[T_N] = {3, 8, 4, 2, 2};
static const char *TABLE_NAME[T_N] = {"frames", "activations", "bindings", "act_ends", "value_pairs"};

typedef struct {
    PyObject_HEAD
    IntMap act_file;     /* act -> file id (VAL_NONE: not known), while the activation is open */
    IntMap frame_file;   /* frame id -> file id */
    IntMap pending;      /* act -> its row in T_ACTS, for the activations this chunk opened */
    IntMap int_vids;     /* an int scalar -> the value id the writer rendered it as */
    IntTable t[T_N];
    PyObject *code_file; /* the writer's dict: code id -> file id */
    /* the writer's scalars, shared with RecordingWriter._scalar_vid: the
       dict (type name, text, flags) -> value id, the next value id (even,
       step 2), the renderer's max_size and the memo bound (SCALAR_MEMO).
       No dict or a max_size below 1: every unseen scalar goes to Python. */
    PyObject *scalar_vids;
    long long next_vid;
    Py_ssize_t max_size, memo;
    /* a 2- and a 3-tuple the memo look-ups fill in place (probe_get) */
    PyObject *probe2, *probe3;
} FilmTables;

/* The type names Renderer._type_name gives the builtin scalars. */
static PyObject *s_name_none, *s_name_bool, *s_name_int, *s_name_float, *s_name_str, *s_name_bytes;
static PyObject *s_text_none, *s_text_true, *s_text_false, *s_ellipsis;

static int scalar_names_ready(void) {
    if (s_ellipsis != NULL) { return 0; }
    s_name_none = PyUnicode_InternFromString("NoneType");
    s_name_bool = PyUnicode_InternFromString("bool");
    s_name_int = PyUnicode_InternFromString("int");
    s_name_float = PyUnicode_InternFromString("float");
    s_name_str = PyUnicode_InternFromString("str");
    s_name_bytes = PyUnicode_InternFromString("bytes");
    s_text_none = PyUnicode_InternFromString("None");
    s_text_true = PyUnicode_InternFromString("True");
    s_text_false = PyUnicode_InternFromString("False");
    if (!s_name_none || !s_name_bool || !s_name_int || !s_name_float || !s_name_str || !s_name_bytes ||
        !s_text_none || !s_text_true || !s_text_false) {
        return -1;
    }
    s_ellipsis = PyUnicode_FromString("\xe2\x80\xa6");  /* U+2026 */
    return s_ellipsis == NULL ? -1 : 0;
}

/* FilmTables(code_file, scalar_vids=None, max_size=0, memo=0) */
static int FT_init(FilmTables *ft, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"code_file", "scalar_vids", "max_size", "memo", NULL};
    PyObject *code_file, *scalar_vids = Py_None;
    Py_ssize_t max_size = 0, memo = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|Onn:FilmTables", kwlist, &PyDict_Type, &code_file,
                                     &scalar_vids, &max_size, &memo)) {
        return -1;
    }
    if (scalar_vids != Py_None && !PyDict_CheckExact(scalar_vids)) {
        PyErr_SetString(PyExc_TypeError, "FilmTables: scalar_vids is not a dict");
        return -1;
    }
    if (scalar_names_ready() < 0) { return -1; }
    PyObject *probe2 = PyTuple_Pack(2, Py_None, Py_None), *probe3 = PyTuple_Pack(3, Py_None, Py_None, Py_None);
    if (probe2 == NULL || probe3 == NULL) {
        Py_XDECREF(probe2);
        Py_XDECREF(probe3);
        return -1;
    }
    PyObject_GC_UnTrack(probe2);
    PyObject_GC_UnTrack(probe3);
    Py_XSETREF(ft->probe2, probe2);
    Py_XSETREF(ft->probe3, probe3);
    Py_XSETREF(ft->code_file, Py_NewRef(code_file));
    Py_XSETREF(ft->scalar_vids, scalar_vids == Py_None ? NULL : Py_NewRef(scalar_vids));
    ft->next_vid = 2;
    ft->max_size = max_size;
    ft->memo = memo;
    for (int i = 0; i < T_N; i++) { ft->t[i].w = TABLE_WIDTH[i]; }
    return 0;
}

static void FT_dealloc(FilmTables *ft) {
    map_free(&ft->act_file);
    map_free(&ft->frame_file);
    map_free(&ft->pending);
    map_free(&ft->int_vids);
    for (int i = 0; i < T_N; i++) { table_free(&ft->t[i]); }
    Py_XDECREF(ft->code_file);
    Py_XDECREF(ft->scalar_vids);
    Py_XDECREF(ft->probe2);
    Py_XDECREF(ft->probe3);
    Py_TYPE(ft)->tp_free((PyObject *)ft);
}

/* An activation opens at ``step``: its row goes in now, with no end yet. */
static int ft_open(FilmTables *ft, const int64_t a[6], int64_t step) {
    uint16_t nulls = (uint16_t)((a[2] == INT_NONE ? 1u << 2 : 0) | (a[4] == INT_NONE ? 1u << 4 : 0) | (1u << 7));
    int64_t *row = table_add(&ft->t[T_ACTS], nulls);
    if (row == NULL) { return -1; }
    for (int i = 0; i < 6; i++) { row[i] = a[i] == INT_NONE ? 0 : a[i]; }
    row[6] = step;
    row[7] = 0;
    if (map_put(&ft->pending, a[0], ft->t[T_ACTS].n - 1) < 0) { return -1; }
    int64_t file = VAL_NONE;
    map_get(&ft->frame_file, a[1], &file);
    return map_put(&ft->act_file, a[0], file);
}

/* Activation ``act`` ends at ``step``: its row when this chunk opened it,
   else an act_ends row (the row went out with an earlier chunk). */
static int ft_end(FilmTables *ft, int64_t act, int64_t step) {
    Py_ssize_t i = map_find(&ft->pending, act);
    if (i >= 0) {
        Py_ssize_t r = (Py_ssize_t)ft->pending.vals[i];
        ft->t[T_ACTS].cells[r * 8 + 7] = step;
        ft->t[T_ACTS].nulls[r] &= (uint16_t)~(1u << 7);
        map_delete_at(&ft->pending, i);
    } else {
        int64_t *row = table_add(&ft->t[T_ENDS], 0);
        if (row == NULL) { return -1; }
        row[0] = act;
        row[1] = step;
    }
    Py_ssize_t j = map_find(&ft->act_file, act);
    if (j >= 0) { map_delete_at(&ft->act_file, j); }
    return 0;
}

/* A frame row; the frame runs in its code's file. */
static int ft_frame(FilmTables *ft, int64_t frame, PyObject *code_id, int64_t code, int64_t step) {
    PyObject *file_obj = PyDict_GetItemWithError(ft->code_file, code_id);
    if (file_obj == NULL && PyErr_Occurred()) { return -1; }
    int64_t file = VAL_NONE;
    if (file_obj != NULL && file_obj != Py_None && !compact_int(file_obj, 0, &file)) {
        PyErr_SetString(PyExc_TypeError, "FilmTables: a file id is not an int");
        return -1;
    }
    int64_t *row = table_add(&ft->t[T_FRAMES], 0);
    if (row == NULL) { return -1; }
    row[0] = frame;
    row[1] = code;
    row[2] = step;
    return map_put(&ft->frame_file, frame, file);
}

static int ft_binding(FilmTables *ft, int64_t frame, int64_t name_id, int64_t step, int64_t vid) {
    int64_t *row = table_add(&ft->t[T_BINDINGS], vid == INT_NONE ? 1u << 3 : 0);
    if (row == NULL) { return -1; }
    row[0] = frame;
    row[1] = name_id;
    row[2] = step;
    row[3] = vid == INT_NONE ? 0 : vid;
    return 0;
}

static int ft_pair(FilmTables *ft, int64_t pos, int64_t vid) {
    int64_t *row = table_add(&ft->t[T_PAIRS], 0);
    if (row == NULL) { return -1; }
    row[0] = pos;
    row[1] = vid;
    return 0;
}

/* The ``n`` arguments of a method as ints (None allowed where ``none_ok``
   has the bit): 1, or 0 with a TypeError naming ``usage``. */
static int int_args(PyObject *const *args, Py_ssize_t nargs, int n, unsigned none_ok, int64_t *out,
                    const char *usage) {
    for (int i = 0; nargs == n && i < n; i++) {
        if (!compact_int(args[i], (none_ok >> i) & 1, &out[i])) { nargs = -1; }
    }
    if (nargs != n) {
        PyErr_Format(PyExc_TypeError, "%s takes %d ints that fit 64 bits", usage, n);
        return 0;
    }
    return 1;
}

/* The Python writer's own rows (store.RecordingWriter._payload) go in
   through these three. */
static PyObject *FT_open_activation(FilmTables *ft, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[7];
    if (!int_args(args, nargs, 7, (1u << 2) | (1u << 4), a, "open_activation(act, frame, parent, thread, task, depth, step)") ||
        ft_open(ft, a, a[6]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *FT_add_frame(FilmTables *ft, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[3];
    if (!int_args(args, nargs, 3, 0, a, "add_frame(frame, code, step)") || ft_frame(ft, a[0], args[1], a[1], a[2]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *FT_add_binding(FilmTables *ft, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[4];
    if (!int_args(args, nargs, 4, 1u << 3, a, "add_binding(frame, name_id, step, value)") ||
        ft_binding(ft, a[0], a[1], a[2], a[3]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A new chunk: the rows of the last one were written.  An activation it
   left open keeps its file; its end will be an act_ends row. */
static PyObject *FT_new_chunk(FilmTables *ft, PyObject *unused) {
    for (int i = 0; i < T_N; i++) { ft->t[i].n = 0; }
    map_clear(&ft->pending);
    Py_RETURN_NONE;
}

/* rows(name) -> list of tuples, None for a null: the rows as the Python
   writer holds them (tests, and the fallback for a column the text writer
   declines). */
static PyObject *FT_rows(FilmTables *ft, PyObject *name) {
    int which = -1;
    for (int i = 0; i < T_N; i++) {
        if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, TABLE_NAME[i]) == 0) { which = i; }
    }
    if (which < 0) {
        PyErr_SetString(PyExc_KeyError, "FilmTables.rows(): no such table");
        return NULL;
    }
    const IntTable *t = &ft->t[which];
    PyObject *out = PyList_New(t->n);
    for (Py_ssize_t i = 0; out != NULL && i < t->n; i++) {
        PyObject *row = PyTuple_New(t->w);
        if (row == NULL) { Py_CLEAR(out); break; }
        for (int c = 0; c < t->w; c++) {
            PyObject *x = (t->nulls[i] & (1u << c)) ? Py_NewRef(Py_None) : PyLong_FromLongLong(t->cells[i * t->w + c]);
            if (x == NULL) { Py_DECREF(row); Py_CLEAR(out); break; }
            PyTuple_SET_ITEM(row, c, x);
        }
        if (out != NULL) { PyList_SET_ITEM(out, i, row); }
    }
    return out;
}

/* texts(base, frame_modes, act_modes, binding_modes) -> dict: for each
   table with rows, the list of its columns as JSON text (None for a column
   Python must write from rows()); "act_ends" as the act, then the step
   relative to base; "value_pairs" as one flat list (position, value id,
   ...).  The text is what schema.pack_chunk writes for the same rows. */
static PyObject *FT_texts(FilmTables *ft, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "texts(base, frame_modes, act_modes, binding_modes)");
        return NULL;
    }
    long long base = PyLong_AsLongLong(args[0]);
    if (base == -1 && PyErr_Occurred()) { return NULL; }
    long modes[T_N][8];
    for (int i = 0; i < T_N; i++) {
        if (i == T_ENDS) {
            modes[i][0] = 0;
            modes[i][1] = 2;
            continue;
        }
        if (i == T_PAIRS) { continue; }
        PyObject *m = args[1 + i];
        if (!PyTuple_CheckExact(m) || PyTuple_GET_SIZE(m) != TABLE_WIDTH[i]) {
            PyErr_SetString(PyExc_TypeError, "texts(): a tuple of modes per table, one per column");
            return NULL;
        }
        for (int c = 0; c < TABLE_WIDTH[i]; c++) {
            modes[i][c] = PyLong_AsLong(PyTuple_GET_ITEM(m, c));
            if (modes[i][c] == -1 && PyErr_Occurred()) { return NULL; }
        }
    }
    /* one buffer per column (value pairs: one for both), at most 21
       characters per number and a comma */
    char *buf[T_N][8] = {{NULL}};
    size_t len[T_N][8] = {{0}};
    PyObject *out = NULL;
    for (int i = 0; i < T_N; i++) {
        int cols = i == T_PAIRS ? 1 : ft->t[i].w;
        size_t cap = (size_t)ft->t[i].n * 22 * (i == T_PAIRS ? 2 : 1) + 3;
        for (int c = 0; ft->t[i].n && c < cols; c++) {
            if ((buf[i][c] = PyMem_RawMalloc(cap)) == NULL) { PyErr_NoMemory(); goto done; }
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < T_N; i++) {
        const IntTable *t = &ft->t[i];
        if (t->n == 0) { continue; }
        if (i == T_PAIRS) {
            size_t n = 0;
            char *b = buf[i][0];
            b[n++] = '[';
            for (Py_ssize_t r = 0; r < t->n; r++) {
                if (r) { b[n++] = ','; }
                n += format_int(b + n, t->cells[2 * r]);
                b[n++] = ',';
                n += format_int(b + n, t->cells[2 * r + 1]);
            }
            b[n++] = ']';
            len[i][0] = n;
            continue;
        }
        for (int c = 0; c < t->w; c++) { len[i][c] = table_column_text(t, c, modes[i][c], base, buf[i][c]); }
    }
    Py_END_ALLOW_THREADS
    out = PyDict_New();
    for (int i = 0; out != NULL && i < T_N; i++) {
        if (ft->t[i].n == 0) { continue; }
        int cols = i == T_PAIRS ? 1 : ft->t[i].w;
        PyObject *texts = PyList_New(cols);
        for (int c = 0; texts != NULL && c < cols; c++) {
            PyObject *text = len[i][c] ? PyUnicode_DecodeASCII(buf[i][c], (Py_ssize_t)len[i][c], NULL)
                                       : Py_NewRef(Py_None);
            if (text == NULL) { Py_CLEAR(texts); break; }
            PyList_SET_ITEM(texts, c, text);
        }
        if (texts == NULL || PyDict_SetItemString(out, TABLE_NAME[i], i == T_PAIRS ? PyList_GET_ITEM(texts, 0) : texts) < 0) {
            Py_XDECREF(texts);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(texts);
    }
done:
    for (int i = 0; i < T_N; i++) {
        for (int c = 0; c < 8; c++) { PyMem_RawFree(buf[i][c]); }
    }
    return out;
}

/* -- the event loop of a chunk -- */

/* A payload item's one-letter tag ('F', 'A', 'v', 'b', 's', 'R', ...), or 0. */
static Py_UCS4 tag_of(PyObject *tag) {
    return PyUnicode_CheckExact(tag) && PyUnicode_GET_LENGTH(tag) == 1 ? PyUnicode_READ_CHAR(tag, 0) : 0;
}

/* The value id of a scalar the writer rendered before (by_value knows it,
   keyed as store._KEYED_BY_VALUE): 1 and *vid, 0 (not known), -1 error.
   An int's answer is remembered in C: the key tuple and the dict lookup
   would be most of the writer's cost per generator step. */
static int known_scalar_vid(FilmTables *ft, PyObject *scalar, PyObject *by_value, int64_t *vid) {
    PyTypeObject *cls = Py_TYPE(scalar);
    if (cls != &PyLong_Type && cls != &PyUnicode_Type && cls != &PyBool_Type &&
        cls != &PyBytes_Type && scalar != Py_None) {
        return 0;
    }
    long long iv = 0;
    int cacheable = cls == &PyLong_Type && int64_of(scalar, &iv) && iv > MAP_GONE;
    if (cacheable && map_get(&ft->int_vids, iv, vid)) { return 1; }
    PyObject *key = PyTuple_Pack(2, (PyObject *)cls, scalar);
    if (key == NULL) { return -1; }
    PyObject *found = PyDict_GetItemWithError(by_value, key);
    Py_DECREF(key);
    if (found == NULL) { return PyErr_Occurred() ? -1 : 0; }
    if (!compact_int(found, 0, vid)) {
        PyErr_SetString(PyExc_TypeError, "FilmTables: a value id is not an int");
        return -1;
    }
    if (cacheable && ft->int_vids.used < 200000 && map_put(&ft->int_vids, iv, *vid) < 0) { return -1; }
    return 1;
}

/* The lines a chunk saw, remembered for the length of one split() call:
   most steps repeat a line seen a moment before, and the answer here
   saves a (file, line) tuple and a set lookup. */
#define SEEN_SLOTS 2048
typedef struct { int64_t file, line; } SeenSlot;

typedef struct {
    FilmTables *ft;
    PyObject *payload_fn, *by_value, *names, *new_names, *val_rows, *seen_lines, *new_lines;
    Py_ssize_t base;
    SeenSlot seen[SEEN_SLOTS];
} Split;

/* Whether the writer renders ``x`` here as Renderer.render_scalar does:
   an exact None, bool, int of 64 bits, float, str or bytes, whose text is
   the interpreter's own repr (no user code), once the writer handed its
   scalars over (FT_init). */
static inline int renders_in_c(FilmTables *ft, PyObject *x) {
    if (ft->scalar_vids == NULL || ft->max_size < 1) { return 0; }
    PyTypeObject *t = Py_TYPE(x);
    if (t == &PyLong_Type) {
        long long v;
        return int64_of(x, &v);
    }
    return x == Py_None || t == &PyBool_Type || t == &PyFloat_Type || t == &PyUnicode_Type || t == &PyBytes_Type;
}

/* Renderer.render_scalar(x) for a scalar renders_in_c takes: the text (new
   reference), its type name (borrowed) and flags.  A str or bytes longer
   than max_size is cut before its repr is taken, as _scalar_text cuts it;
   then any text past max_size is cut to max_size - 1 characters and an
   ellipsis, with FLAG_TRUNCATED. */
static PyObject *scalar_text(FilmTables *ft, PyObject *x, PyObject **tname, long *flags) {
    PyTypeObject *t = Py_TYPE(x);
    Py_ssize_t limit = ft->max_size;
    PyObject *text;
    *flags = 0;
    if (x == Py_None) {
        *tname = s_name_none;
        text = Py_NewRef(s_text_none);
    } else if (t == &PyBool_Type) {
        *tname = s_name_bool;
        text = Py_NewRef(x == Py_True ? s_text_true : s_text_false);
    } else if (t == &PyLong_Type) {
        long long v;
        if (!int64_of(x, &v)) {
            PyErr_SetString(PyExc_SystemError, "FilmTables: an int past 64 bits");
            return NULL;
        }
        char digits[24];
        size_t n = format_int(digits, v);
        *tname = s_name_int;
        text = PyUnicode_FromStringAndSize(digits, (Py_ssize_t)n);
    } else if (t == &PyFloat_Type) {
        /* float.__repr__ exactly */
        char *repr = PyOS_double_to_string(PyFloat_AS_DOUBLE(x), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (repr == NULL) { return NULL; }
        text = PyUnicode_FromString(repr);
        PyMem_Free(repr);
        *tname = s_name_float;
    } else {
        int is_str = t == &PyUnicode_Type;
        Py_ssize_t n = is_str ? PyUnicode_GET_LENGTH(x) : PyBytes_GET_SIZE(x);
        PyObject *head = n <= limit ? Py_NewRef(x)
                         : is_str ? PyUnicode_Substring(x, 0, limit)
                                  : PyBytes_FromStringAndSize(PyBytes_AS_STRING(x), limit);
        text = head ? PyObject_Repr(head) : NULL;
        Py_XDECREF(head);
        if (text != NULL && n > limit) { Py_SETREF(text, PyUnicode_Concat(text, s_ellipsis)); }
        *tname = is_str ? s_name_str : s_name_bytes;
    }
    if (text != NULL && PyUnicode_GET_LENGTH(text) > limit) {
        PyObject *head = PyUnicode_Substring(text, 0, limit - 1);
        Py_SETREF(text, head ? PyUnicode_Concat(head, s_ellipsis) : NULL);
        Py_XDECREF(head);
        *flags = 1;  /* schema.FLAG_TRUNCATED */
    }
    return text;
}

/* A value id as a Python int in *out (new reference); 0 or -1. */
static int vid_object(int64_t vid, PyObject **out) {
    *out = PyLong_FromLongLong(vid);
    return *out == NULL ? -1 : 0;
}

/* dict[(items...)] without making the key: the items go into the probe
   tuple (borrowed) for the look-up only.  The keys compared are tuples
   of a static type, str, bytes and ints: no code of the test runs.  A
   borrowed value, or NULL (an exception set or not found). */
static PyObject *probe_get(PyObject *dict, PyObject *probe, PyObject *const *items) {
    Py_ssize_t n = PyTuple_GET_SIZE(probe);
    for (Py_ssize_t i = 0; i < n; i++) { PyTuple_SET_ITEM(probe, i, items[i]); }
    PyObject *found = PyDict_GetItemWithError(dict, probe);
    for (Py_ssize_t i = 0; i < n; i++) { PyTuple_SET_ITEM(probe, i, Py_None); }
    return found;
}

/* RecordingWriter._scalar_vid in C: the value id of a scalar kept by
   reference, rendered and given the next id the first time, with the same
   memo entries and val row the Python writer adds.  1 and *vid; 0 when
   Python must do it (a type or an int C does not render, nothing changed);
   -1 on error.

   Every key and row made here holds only atoms and a static type, so it
   leaves the garbage collector's lists at once: the collector would drop
   them at its next pass anyway, after walking them. */
static int scalar_vid(Split *sp, PyObject *scalar, int64_t step, int64_t *vid) {
    FilmTables *ft = sp->ft;
    if (!renders_in_c(ft, scalar)) { return known_scalar_vid(ft, scalar, sp->by_value, vid); }
    PyTypeObject *cls = Py_TYPE(scalar);
    PyObject *vkey = NULL, *text = NULL, *key = NULL, *vid_obj = NULL, *flags_obj = NULL;
    long long iv = 0;
    int cacheable = 0, rc = -1;
    if (cls != &PyFloat_Type) {  /* store._KEYED_BY_VALUE */
        cacheable = cls == &PyLong_Type && int64_of(scalar, &iv) && iv > MAP_GONE;
        if (cacheable && map_get(&ft->int_vids, iv, vid)) { return 1; }
        PyObject *const vitems[2] = {(PyObject *)cls, scalar};
        PyObject *found = probe_get(sp->by_value, ft->probe2, vitems);
        if (found != NULL) {
            if (!compact_int(found, 0, vid)) {
                PyErr_SetString(PyExc_TypeError, "FilmTables: a value id is not an int");
                return -1;
            }
            if (cacheable && ft->int_vids.used < 200000 && map_put(&ft->int_vids, iv, *vid) < 0) { return -1; }
            return 1;
        }
        if (PyErr_Occurred()) { return -1; }
        /* by_value takes it below, when it has room */
        if (PyDict_GET_SIZE(sp->by_value) < ft->memo) {
            vkey = PyTuple_Pack(2, (PyObject *)cls, scalar);
            if (vkey == NULL) { return -1; }
            PyObject_GC_UnTrack(vkey);
        }
    }
    PyObject *tname;
    long flags;
    text = scalar_text(ft, scalar, &tname, &flags);
    if (text == NULL || (flags_obj = PyLong_FromLong(flags)) == NULL) { goto done; }
    PyObject *const kitems[3] = {tname, text, flags_obj};
    PyObject *found = probe_get(ft->scalar_vids, ft->probe3, kitems);
    if (found != NULL) {
        if (!compact_int(found, 0, vid)) {
            PyErr_SetString(PyExc_TypeError, "FilmTables: a value id is not an int");
            goto done;
        }
        vid_obj = Py_NewRef(found);
    } else {
        if (PyErr_Occurred()) { goto done; }
        *vid = ft->next_vid;
        if (vid_object(*vid, &vid_obj) < 0) { goto done; }
        ft->next_vid += 2;
        if (PyDict_GET_SIZE(ft->scalar_vids) < ft->memo) {
            key = PyTuple_Pack(3, tname, text, flags_obj);
            if (key == NULL) { goto done; }
            PyObject_GC_UnTrack(key);
            if (PyDict_SetItem(ft->scalar_vids, key, vid_obj) < 0) { goto done; }
        }
        /* (vid, objnum, step, type name, text, detail, flags) */
        PyObject *step_obj = PyLong_FromLongLong(step);
        PyObject *row = step_obj ? PyTuple_Pack(7, vid_obj, Py_None, step_obj, tname, text, Py_None, flags_obj)
                                 : NULL;
        Py_XDECREF(step_obj);
        if (row == NULL) { goto done; }
        PyObject_GC_UnTrack(row);
        int added = PyList_Append(sp->val_rows, row);
        Py_DECREF(row);
        if (added < 0) { goto done; }
    }
    if (vkey != NULL) {
        if (PyDict_SetItem(sp->by_value, vkey, vid_obj) < 0) { goto done; }
        if (cacheable && ft->int_vids.used < 200000 && map_put(&ft->int_vids, iv, *vid) < 0) { goto done; }
    }
    rc = 1;
done:
    Py_XDECREF(vkey);
    Py_XDECREF(text);
    Py_XDECREF(key);
    Py_XDECREF(vid_obj);
    Py_XDECREF(flags_obj);
    return rc;
}

/* What c_payload's first pass asks of a scalar: whether scalar_vid will
   give its id (1), Python must render it (0), or an error (-1).  A scalar
   C renders needs no look-up here. */
static int scalar_vid_possible(Split *sp, PyObject *scalar) {
    if (renders_in_c(sp->ft, scalar)) { return 1; }
    int64_t v;
    return known_scalar_vid(sp->ft, scalar, sp->by_value, &v);
}

/* (file, line) ran: added to new_lines the first time (-1 on error). */
static int note_line(Split *sp, int64_t file, int64_t line) {
    SeenSlot *slot = &sp->seen[(mix64(file) ^ (size_t)line * 1000003u) % SEEN_SLOTS];
    if (slot->file == file && slot->line == line) { return 0; }
    PyObject *f = file == VAL_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(file);
    PyObject *l = line == LINE_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(line);
    PyObject *key = (f && l) ? PyTuple_Pack(2, f, l) : NULL;
    Py_XDECREF(f);
    Py_XDECREF(l);
    if (key == NULL) { return -1; }
    PyObject_GC_UnTrack(key);
    int seen = PySet_Contains(sp->seen_lines, key);
    if (seen == 0 && (PySet_Add(sp->seen_lines, key) < 0 || PyList_Append(sp->new_lines, key) < 0)) { seen = -1; }
    Py_DECREF(key);
    if (seen < 0) { return -1; }
    slot->file = file;
    slot->line = line;
    return 0;
}

/* The name id of a binding's name, numbered as RecordingWriter._name_id
   numbers it. */
static int name_id(Split *sp, PyObject *name, int64_t *out) {
    PyObject *nid = PyDict_GetItemWithError(sp->names, name);
    if (nid == NULL) {
        if (PyErr_Occurred()) { return -1; }
        nid = PyLong_FromSsize_t(PyDict_GET_SIZE(sp->names) + 1);
        if (nid == NULL) { return -1; }
        PyObject *entry = PyTuple_Pack(2, nid, name);
        int rc = entry ? PyDict_SetItem(sp->names, name, nid) : -1;
        if (rc == 0) { rc = PyList_Append(sp->new_names, entry); }
        Py_XDECREF(entry);
        long long v = PyLong_AsLongLong(nid);
        Py_DECREF(nid);
        *out = v;
        return rc;
    }
    long long v;
    if (!PyLong_CheckExact(nid) || !int64_of(nid, &v)) {
        PyErr_SetString(PyExc_TypeError, "FilmTables: a name id is not an int");
        return -1;
    }
    *out = v;
    return 0;
}

/* RecordingWriter._payload for a payload of frame (F), activation (A),
   binding (b) items, bindings and values of scalars kept by reference (s,
   R: the builtin scalars scalar_vid renders, or any scalar rendered
   before), and snapshots already rendered to JSON text (v): calls and most
   line steps.  1: done (*value is the event's value id, INT_NONE for
   none); 0: Python must do it (checked before anything changed); -1:
   error. */
static int c_payload(Split *sp, PyObject *payload, int64_t step, int64_t *value) {
    if (!PyTuple_CheckExact(payload) || PyTuple_GET_SIZE(payload) == 0) { return 0; }
    Py_ssize_t n = PyTuple_GET_SIZE(payload);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(payload, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) < 2) { return 0; }
        PyObject *const *f = &PyTuple_GET_ITEM(item, 1);
        Py_ssize_t size = PyTuple_GET_SIZE(item);
        int64_t a[6] = {0};
        int known;
        switch (tag_of(PyTuple_GET_ITEM(item, 0))) {
        case 'F':
            if (size != 3 || !compact_int(f[0], 0, &a[0]) || !compact_int(f[1], 0, &a[1])) { return 0; }
            break;
        case 'A':
            if (size != 7) { return 0; }
            for (int j = 0; j < 6; j++) {
                if (!compact_int(f[j], j == 2 || j == 4, &a[j])) { return 0; }
            }
            break;
        case 'v':
            if (size != 7 || (f[4] != Py_None && !PyUnicode_CheckExact(f[4]))) { return 0; }
            break;
        case 'b':
            if (size != 4 || !PyUnicode_CheckExact(f[1]) || !compact_int(f[0], 0, &a[0]) ||
                !compact_int(f[2], 1, &a[2])) {
                return 0;
            }
            break;
        case 's':
            if (size != 4 || !PyUnicode_CheckExact(f[1]) || !compact_int(f[0], 0, &a[0])) { return 0; }
            known = scalar_vid_possible(sp, f[2]);
            if (known <= 0) { return known; }
            break;
        case 'R':
            known = size == 2 ? scalar_vid_possible(sp, f[0]) : 0;
            if (known <= 0) { return known; }
            break;
        default:
            return 0;
        }
    }
    PyObject *step_obj = NULL;  /* made for a "v" row only */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(payload, i);
        PyObject *const *f = &PyTuple_GET_ITEM(item, 1);
        Py_UCS4 tag = tag_of(PyTuple_GET_ITEM(item, 0));
        int64_t a[6] = {0}, nid, vid;
        int rc;
        switch (tag) {
        case 'F':
            compact_int(f[0], 0, &a[0]);
            compact_int(f[1], 0, &a[1]);
            rc = ft_frame(sp->ft, a[0], f[1], a[1], step);
            break;
        case 'A':
            for (int j = 0; j < 6; j++) { compact_int(f[j], j == 2 || j == 4, &a[j]); }
            rc = ft_open(sp->ft, a, step);
            break;
        case 'v': {
            /* (vid, objnum, step, type name, text, detail, flags): str, int, None */
            if (step_obj == NULL && (step_obj = PyLong_FromLongLong(step)) == NULL) { return -1; }
            PyObject *row = PyTuple_Pack(7, f[0], f[1], step_obj, f[2], f[3], f[4], f[5]);
            rc = row ? PyList_Append(sp->val_rows, row) : -1;
            Py_XDECREF(row);
            break;
        }
        case 'R':
            rc = scalar_vid(sp, f[0], step, value) == 1 ? 0 : -1;
            break;
        default:  /* 'b' or 's': a binding */
            compact_int(f[0], 0, &a[0]);
            if (tag == 's') {
                rc = scalar_vid(sp, f[2], step, &vid) == 1 ? 0 : -1;
            } else {
                rc = compact_int(f[2], 1, &vid) ? 0 : -1;
            }
            if (rc == 0) { rc = name_id(sp, f[1], &nid); }
            if (rc == 0) { rc = ft_binding(sp->ft, a[0], nid, step, vid); }
        }
        if (rc < 0) {
            Py_XDECREF(step_obj);
            if (!PyErr_Occurred()) { PyErr_SetString(PyExc_RuntimeError, "FilmTables.split(): a payload row"); }
            return -1;
        }
    }
    Py_XDECREF(step_obj);
    return 1;
}

/* An event's value from Python (a value id or None) as a pair. */
static int pair_of(Split *sp, int64_t pos, PyObject *value) {
    if (value == Py_None) { return 0; }
    int64_t v;
    if (!compact_int(value, 0, &v)) {
        PyErr_SetString(PyExc_TypeError, "FilmTables.split(): an event's value is not an int id");
        return -1;
    }
    return ft_pair(sp->ft, pos, v);
}

/* The payload of one event handed to RecordingWriter._payload. */
static int python_payload(Split *sp, int64_t step, PyObject *value, PyObject *payload) {
    PyObject *step_obj = PyLong_FromLongLong(step);
    if (step_obj == NULL) { return -1; }
    PyObject *cargs[3] = {step_obj, value, payload};
    PyObject *result = PyObject_Vectorcall(sp->payload_fn, cargs, 3, NULL);
    Py_DECREF(step_obj);
    if (result == NULL) { return -1; }
    int rc = pair_of(sp, step - sp->base, result);
    Py_DECREF(result);
    return rc;
}

/* One event of the chunk: its payload's rows and value, its line, the
   end of its activation. */
static int split_one(Split *sp, const Ev *e, const ResumeRow *row, int64_t step) {
    FilmTables *ft = sp->ft;
    int64_t pos = step - sp->base;
    if (e->form == FORM_RESUME) {
        int64_t a[6] = {e->act, row->frame, row->parent, row->thread, row->task, row->depth};
        if (ft_open(ft, a, step) < 0) { return -1; }
    } else if (e->form == FORM_CALL) {
        /* the arguments' rows (c_payload checks them all before it changes
           anything), then the frame and its activation */
        int64_t vid = INT_NONE, code;
        int done = e->payload != NULL ? c_payload(sp, e->payload, step, &vid) : 1;
        if (done < 0) { return -1; }
        if (done && compact_int(e->value, 0, &code)) {
            int64_t a[6] = {e->act, row->frame, row->parent, row->thread, row->task, row->depth};
            if (ft_frame(ft, row->frame, e->value, code, step) < 0 || ft_open(ft, a, step) < 0) { return -1; }
        } else {
            PyObject *payload = compact_payload(e, row);
            if (payload == NULL) { return -1; }
            int rc = done ? -1 : python_payload(sp, step, Py_None, payload);
            Py_DECREF(payload);
            if (rc < 0) {
                if (!PyErr_Occurred()) { PyErr_SetString(PyExc_TypeError, "FilmTables.split(): a code id is not an int"); }
                return -1;
            }
        }
    } else if (e->form == FORM_SCALAR) {
        int64_t vid;
        int known = scalar_vid(sp, e->value, step, &vid);
        if (known < 0) { return -1; }
        if (known) {
            if (ft_pair(ft, pos, vid) < 0) { return -1; }
        } else {
            PyObject *payload = compact_payload(e, NULL);
            if (payload == NULL) { return -1; }
            int rc = python_payload(sp, step, Py_None, payload);
            Py_DECREF(payload);
            if (rc < 0) { return -1; }
        }
    } else {
        PyObject *value = e->value ? e->value : Py_None, *payload = e->payload;
        if (payload == NULL || (PyTuple_CheckExact(payload) && PyTuple_GET_SIZE(payload) == 0)) {
            if (pair_of(sp, pos, value) < 0) { return -1; }
        } else {
            int64_t vid = INT_NONE;
            if (value != Py_None && !compact_int(value, 0, &vid)) {
                PyErr_SetString(PyExc_TypeError, "FilmTables.split(): an event's value is not an int id");
                return -1;
            }
            int done = c_payload(sp, payload, step, &vid);
            if (done < 0) { return -1; }
            if (done) {
                if (vid != INT_NONE && ft_pair(ft, pos, vid) < 0) { return -1; }
            } else if (python_payload(sp, step, value, payload) < 0) {
                return -1;
            }
        }
    }
    int64_t file = VAL_NONE;
    map_get(&ft->act_file, e->act, &file);
    if (note_line(sp, file, e->line) < 0) { return -1; }
    if (e->kind == K_RETURN || e->kind == K_YIELD || e->kind == K_UNWIND) {
        return ft_end(ft, e->act, step);
    }
    return 0;
}

/* split(parts, base, payload_fn, by_value, names, new_names, val_rows,
   seen_lines, new_lines): the writer's event loop (store._FilmTables.split)
   over a chunk's sealed EventLog parts.  The event columns themselves are
   event_columns()'s. */
static PyObject *FT_split(FilmTables *ft, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "split() takes 9 arguments");
        return NULL;
    }
    PyObject *parts = args[0];
    if (!PyTuple_CheckExact(parts) || !PyDict_CheckExact(args[3]) || !PyDict_CheckExact(args[4]) ||
        !PyList_CheckExact(args[5]) || !PyList_CheckExact(args[6]) || !PySet_CheckExact(args[7]) ||
        !PyList_CheckExact(args[8])) {
        PyErr_SetString(PyExc_TypeError, "split(): arguments of unexpected types");
        return NULL;
    }
    Split *sp = PyMem_Malloc(sizeof(Split));
    if (sp == NULL) { return PyErr_NoMemory(); }
    *sp = (Split){ft, args[2], args[3], args[4], args[5], args[6], args[7], args[8], 0};
    for (int i = 0; i < SEEN_SLOTS; i++) { sp->seen[i].file = MAP_GONE; }
    PyObject *result = NULL;
    sp->base = PyLong_AsSsize_t(args[1]);
    if (sp->base == -1 && PyErr_Occurred()) { goto done; }
    if (PyList_GET_SIZE(sp->new_lines) == 0 && PyObject_GC_IsTracked(sp->new_lines)) {
        PyObject_GC_UnTrack(sp->new_lines);  /* it gets untracked (file, line) tuples only */
    }
    int64_t step = sp->base;
    for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(parts); p++) {
        PyObject *part = PyTuple_GET_ITEM(parts, p);
        if (!Py_IS_TYPE(part, &EventLogType) || !((EventLog *)part)->sealed) {
            PyErr_SetString(PyExc_TypeError, "split(): a part is not a sealed EventLog");
            goto done;
        }
        EventLog *log = (EventLog *)part;
        Py_ssize_t r = 0;
        for (Py_ssize_t i = 0; i < log->n; i++, step++) {
            const Ev *e = &log->ev[i];
            const ResumeRow *row = NULL;
            if (HAS_ROW(e)) {
                if (r >= log->nrows) {
                    PyErr_SetString(PyExc_SystemError, "split(): EventLog rows out of step");
                    goto done;
                }
                row = &log->rows[r++];
            }
            if (split_one(sp, e, row, step) < 0) { goto done; }
        }
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(sp);
    return result;
}

static PyMethodDef FT_methods[] = {
    {"split", (PyCFunction)(void (*)(void))FT_split, METH_FASTCALL,
     "The event loop of a chunk of sealed EventLogs: rows, values, lines, activation ends."},
    {"open_activation", (PyCFunction)(void (*)(void))FT_open_activation, METH_FASTCALL,
     "open_activation(act, frame, parent, thread, task, depth, step)"},
    {"add_frame", (PyCFunction)(void (*)(void))FT_add_frame, METH_FASTCALL, "add_frame(frame, code, step)"},
    {"add_binding", (PyCFunction)(void (*)(void))FT_add_binding, METH_FASTCALL,
     "add_binding(frame, name_id, step, value)"},
    {"texts", (PyCFunction)(void (*)(void))FT_texts, METH_FASTCALL,
     "texts(base, frame_modes, act_modes, binding_modes) -> each table's columns as JSON text."},
    {"rows", (PyCFunction)FT_rows, METH_O, "rows(table) -> the rows as a list of tuples."},
    {"new_chunk", (PyCFunction)FT_new_chunk, METH_NOARGS, "Forget this chunk's rows (they were written)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef FT_members[] = {
    {"next_vid", T_LONGLONG, offsetof(FilmTables, next_vid), 0,
     "The value id the next scalar rendered by the writer gets (C or Python)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FilmTablesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_escope.recorder._hotpath.FilmTables",
    .tp_basicsize = sizeof(FilmTables),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The writer's rows of a chunk as C integers (store._FilmTables in Python).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FT_init,
    .tp_dealloc = (destructor)FT_dealloc,
    .tp_methods = FT_methods,
    .tp_members = FT_members,
};

/* -- the fingerprint of a list or tuple of scalars ----------------------------------- */

/* values.IMMUTABLE_SCALARS, compared by exact type as values.IMMUTABLE_IDS
   does (a subclass of int is not one of them). */

/* scalar_fingerprint(value) -> tuple or None.

   values.fingerprint's common case in C: a list or tuple (or a subclass)
   whose first 30 items are immutable scalars has the fingerprint
   (len, id(item0), id(item1), ...).  None for anything else, which the
   caller hands to values.fingerprint.  Reads only the C array: no user
   code runs, as in the Python version. */
static PyObject *scalar_fingerprint(PyObject *module, PyObject *value) {
    PyObject **items;
    Py_ssize_t n;
    if (!sequence_items(value, &items, &n)) { Py_RETURN_NONE; }
    /* a subclass with instance fields: they are part of what is shown, and
       values.fingerprint covers them */
    if (!PyList_CheckExact(value) && !PyTuple_CheckExact(value) && Py_TYPE(value)->tp_dictoffset != 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t k = n < SHALLOW_LIMIT ? n : SHALLOW_LIMIT;
    for (Py_ssize_t i = 0; i < k; i++) {
        if (!is_scalar_type(items[i])) { Py_RETURN_NONE; }
    }
    PyObject *fp = PyTuple_New(k + 1);
    if (fp == NULL) { return NULL; }
    PyObject *len = PyLong_FromSsize_t(n);
    if (len == NULL) { Py_DECREF(fp); return NULL; }
    PyTuple_SET_ITEM(fp, 0, len);
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *id = PyLong_FromVoidPtr(items[i]);
        if (id == NULL) { Py_DECREF(fp); return NULL; }
        PyTuple_SET_ITEM(fp, i + 1, id);
    }
    /* ints only: nothing for the garbage collector to follow */
    PyObject_GC_UnTrack(fp);
    return fp;
}

/* -- the rendering of a list or tuple of scalars --------------------------------- */

#define ELLIPSIS "\xe2\x80\xa6"  /* U+2026 in UTF-8 */

/* A growing UTF-8 text. */
typedef struct { char *p; size_t len, cap; } TextBuf;

static int text_put(TextBuf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 64;
        char *p = PyMem_Realloc(b->p, cap);
        if (p == NULL) { PyErr_NoMemory(); return -1; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* ``s`` inside a JSON string, escaped as json's encode_basestring does
   (ensure_ascii off): ", \ and control characters.  Byte by byte: no byte
   of a multi-byte UTF-8 sequence is below 0x80. */
static int text_put_json(TextBuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { continue; }
        if (text_put(b, s + run, i - run) < 0) { return -1; }
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            len = 6;
        }
        if (text_put(b, esc, len) < 0) { return -1; }
    }
    return text_put(b, s + run, n - run);
}

/* json_text_column(rows, index) -> str or None: column ``index`` of a
   table's rows (tuples) whose cells are str or None, as the writer's JSON
   encoder writes the list of them (ensure_ascii off: ", \ and control
   characters escaped, the rest as it is).  The val rows' type names and
   texts: one per value the writer renders, and the encoder made an
   escaped copy of each.  None (Python writes it) for a cell of another
   type, a short row, or a str with a lone surrogate (no UTF-8 for it). */
static PyObject *json_text_column(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "json_text_column() takes a list of rows and an index");
        return NULL;
    }
    Py_ssize_t index = PyLong_AsSsize_t(args[1]);
    if (index == -1 && PyErr_Occurred()) { return NULL; }
    PyObject *rows = args[0];
    Py_ssize_t n = PyList_GET_SIZE(rows);
    TextBuf b = {NULL, 0, 0};
    PyObject *result = NULL;
    if (text_put(&b, "[", 1) < 0) { goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(row) || index < 0 || index >= PyTuple_GET_SIZE(row)) { goto decline; }
        PyObject *x = PyTuple_GET_ITEM(row, index);
        if (i && text_put(&b, ",", 1) < 0) { goto done; }
        if (x == Py_None) {
            if (text_put(&b, "null", 4) < 0) { goto done; }
            continue;
        }
        if (!PyUnicode_CheckExact(x)) { goto decline; }
        int rc;
        if (PyUnicode_IS_ASCII(x)) {
            rc = text_put(&b, "\"", 1) < 0 ||
                 text_put_json(&b, (const char *)PyUnicode_DATA(x), (size_t)PyUnicode_GET_LENGTH(x)) < 0 ||
                 text_put(&b, "\"", 1) < 0 ? -1 : 0;
        } else {
            /* a bytes copy: AsUTF8 would keep one in the str for its life */
            PyObject *utf8 = PyUnicode_AsUTF8String(x);
            if (utf8 == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) { goto done; }
                PyErr_Clear();
                goto decline;
            }
            rc = text_put(&b, "\"", 1) < 0 ||
                 text_put_json(&b, PyBytes_AS_STRING(utf8), (size_t)PyBytes_GET_SIZE(utf8)) < 0 ||
                 text_put(&b, "\"", 1) < 0 ? -1 : 0;
            Py_DECREF(utf8);
        }
        if (rc < 0) { goto done; }
    }
    if (text_put(&b, "]", 1) < 0) { goto done; }
    result = PyUnicode_DecodeUTF8(b.p, (Py_ssize_t)b.len, NULL);
    goto done;
decline:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(b.p);
    return result;
}

/* The repr of an exact str or bytes, cut to ``limit`` characters as
   Renderer._scalar_text cuts it, into ``b``; adds its length in
   characters to ``*chars``. */
static int put_string_repr(TextBuf *b, PyObject *x, Py_ssize_t limit, Py_ssize_t *chars) {
    int is_str = PyUnicode_CheckExact(x);
    Py_ssize_t n = is_str ? PyUnicode_GET_LENGTH(x) : PyBytes_GET_SIZE(x);
    PyObject *head = n <= limit ? Py_NewRef(x)
                     : is_str ? PyUnicode_Substring(x, 0, limit)
                              : PyBytes_FromStringAndSize(PyBytes_AS_STRING(x), limit);
    PyObject *text = head ? PyObject_Repr(head) : NULL;
    Py_XDECREF(head);
    if (text == NULL) { return -1; }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    int rc = utf8 ? text_put(b, utf8, (size_t)size) : -1;
    *chars += PyUnicode_GET_LENGTH(text);
    Py_DECREF(text);
    if (rc == 0 && n > limit) {
        rc = text_put(b, ELLIPSIS, 3);
        *chars += 1;
    }
    return rc;
}

/* The text of one scalar item as Renderer._scalar_text writes it, into
   ``b``, and the name of its type.  Returns 1, or 0 when Python must
   render it (an int past 64 bits, a type not handled here), -1 on error.
   Only exact builtin types: their repr is the interpreter's, never user
   code. */
static int put_scalar_text(TextBuf *b, PyObject *x, Py_ssize_t limit, Py_ssize_t *chars,
                           const char **type_name) {
    PyTypeObject *t = Py_TYPE(x);
    if (x == Py_None) {
        *type_name = "NoneType";
        *chars += 4;
        return text_put(b, "None", 4) < 0 ? -1 : 1;
    }
    if (t == &PyBool_Type) {
        *type_name = "bool";
        *chars += x == Py_True ? 4 : 5;
        return text_put(b, x == Py_True ? "True" : "False", x == Py_True ? 4 : 5) < 0 ? -1 : 1;
    }
    if (t == &PyLong_Type) {
        long long v;
        if (!int64_of(x, &v)) { return 0; }
        char digits[24];
        size_t n = format_int(digits, v);
        *type_name = "int";
        *chars += (Py_ssize_t)n;
        return text_put(b, digits, n) < 0 ? -1 : 1;
    }
    if (t == &PyFloat_Type) {
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(x), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) { return -1; }
        size_t n = strlen(text);
        int rc = text_put(b, text, n);
        PyMem_Free(text);
        *type_name = "float";
        *chars += (Py_ssize_t)n;
        return rc < 0 ? -1 : 1;
    }
    if (t == &PyUnicode_Type || t == &PyBytes_Type) {
        *type_name = t == &PyUnicode_Type ? "str" : "bytes";
        return put_string_repr(b, x, limit, chars) < 0 ? -1 : 1;
    }
    return 0;
}

static int tree_put_value_leaf(TextBuf *json, const char *name, Py_ssize_t name_size, const char *text,
                               size_t n);

/* render_scalar_sequence(value, max_size, max_items) -> (type name, text,
   detail JSON, flags) or None.

   Renderer.render's common case in C: an exact list or tuple whose first
   max_items items are None, bools, ints of 64 bits, floats, str or bytes.
   Under `balanced` a list that grows is re-rendered at each change; in
   Python that is a dict per item and a JSON encoding (a quarter of the
   test thread's time in benchmarks/inprocess.py lines).  The result is
   what Python returns (a test compares both on random lists); anything
   else returns None and Python renders it. */
static PyObject *render_scalar_sequence(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "render_scalar_sequence() takes 3 arguments");
        return NULL;
    }
    PyObject *value = args[0];
    Py_ssize_t max_size = PyLong_AsSsize_t(args[1]), max_items = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) { return NULL; }
    int is_list = Py_IS_TYPE(value, &PyList_Type);
    if ((!is_list && !Py_IS_TYPE(value, &PyTuple_Type)) || max_size < 1 || max_items < 0) { Py_RETURN_NONE; }
    Py_ssize_t size = is_list ? PyList_GET_SIZE(value) : PyTuple_GET_SIZE(value);
    Py_ssize_t k = size < max_items ? size : max_items;
    /* the items are held for the whole rendering: a finalizer run by a
       collection the allocations trigger could change the list */
    PyObject *seq = is_list ? PyList_GetSlice(value, 0, k) : PyTuple_GetSlice(value, 0, k);
    if (seq == NULL) { return NULL; }
    PyObject *result = NULL, *body = NULL;
    TextBuf text = {NULL, 0, 0}, detail = {NULL, 0, 0};
    size_t *spans = PyMem_Malloc(sizeof(size_t) * 2 * (size_t)(k + 1));
    const char **names = PyMem_Malloc(sizeof(char *) * (size_t)(k + 1));
    if (spans == NULL || names == NULL) { PyErr_NoMemory(); goto done; }
    Py_ssize_t chars = 1;
    if (text_put(&text, is_list ? "[" : "(", 1) < 0) { goto done; }
    for (Py_ssize_t i = 0; i < k; i++) {
        if (i && text_put(&text, ", ", 2) < 0) { goto done; }
        chars += i ? 2 : 0;
        spans[2 * i] = text.len;
        int rc = put_scalar_text(&text, is_list ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i),
                                 max_size, &chars, &names[i]);
        if (rc <= 0) {
            if (rc == 0) { result = Py_NewRef(Py_None); }
            goto done;
        }
        spans[2 * i + 1] = text.len;
    }
    if (size > max_items) {
        if (text_put(&text, ", " ELLIPSIS, 5) < 0) { goto done; }
        chars += 3;
    }
    const char *close = is_list ? "]" : size == 1 ? ",)" : ")";
    if (text_put(&text, close, strlen(close)) < 0) { goto done; }
    chars += (Py_ssize_t)strlen(close);
    long flags = size > max_items ? 1 : 0;  /* schema.FLAG_TRUNCATED */
    body = PyUnicode_DecodeUTF8(text.p, (Py_ssize_t)text.len, NULL);
    if (body == NULL) { goto done; }
    if (chars > max_size) {
        PyObject *head = PyUnicode_Substring(body, 0, max_size - 1);
        Py_SETREF(body, head ? PyUnicode_FromFormat("%U%s", head, ELLIPSIS) : NULL);
        Py_XDECREF(head);
        if (body == NULL) { goto done; }
        flags |= 1;
    }
    /* the detail: {"len":n,"items":[{"type":"int","repr":"1"},...]} */
    char digits[24];
    size_t n = format_int(digits, size);
    if (text_put(&detail, "{\"len\":", 7) < 0 || text_put(&detail, digits, n) < 0 ||
        text_put(&detail, ",\"items\":[", 10) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        if ((i && text_put(&detail, ",", 1) < 0) ||
            tree_put_value_leaf(&detail, names[i], (Py_ssize_t)strlen(names[i]), text.p + spans[2 * i],
                                spans[2 * i + 1] - spans[2 * i]) < 0) {
            goto done;
        }
    }
    if (text_put(&detail, "]}", 2) < 0) { goto done; }
    PyObject *detail_text = PyUnicode_DecodeUTF8(detail.p, (Py_ssize_t)detail.len, NULL);
    if (detail_text == NULL) { goto done; }
    result = Py_BuildValue("(sONl)", is_list ? "list" : "tuple", body, detail_text, flags);
done:
    Py_XDECREF(body);
    PyMem_Free(text.p);
    PyMem_Free(detail.p);
    PyMem_Free(spans);
    PyMem_Free(names);
    Py_DECREF(seq);
    return result;
}

/* -- render_tree: Renderer.render of nested builtin containers and plain objects -------- */

/* What one rendering carries from node to node: the limits, the text budget
   Renderer._child spends (its ``_spent.left``), and the Python pieces it
   needs for what C does not decide itself. */
typedef struct {
    Py_ssize_t left, max_size, max_items, max_depth;
    PyObject *redact;       /* the redaction pattern's ``search``, or NULL */
    PyObject *secret_key;   /* Renderer._secret_key, for keys that are not an exact str */
    PyObject *kinds;        /* id(class) -> (class, kind), filled by ``classify`` */
    PyObject *classify;     /* Renderer.c_kind */
    PyObject *secret_names; /* exact str key -> True/False: whether it names a secret; or NULL */
    PyObject *python_child; /* Renderer.form_for_c: a nested value C does not render, or NULL */
    int top_is_class;       /* the value rendered is a class: its type name is "type" */
} Tree;

enum { KIND_PYTHON = 0, KIND_OPAQUE = 1, KIND_OBJECT = 2, KIND_NAMED = 3, KIND_CONTAINER = 4, KIND_CLASS = 5,
       KIND_EXCEPTION = 6 };

/* The kind tuple of a class other than the exact builtins: (KIND_PYTHON,
   name), (KIND_OPAQUE, name) or (KIND_OBJECT, name, dict getter or None,
   ((slot, getter), ...)).  Borrowed from ``kinds``, which keeps it. */
static PyObject *tree_kind(Tree *c, PyTypeObject *t) {
    PyObject *key = PyLong_FromVoidPtr(t);
    if (key == NULL) { return NULL; }
    PyObject *row = PyDict_GetItemWithError(c->kinds, key);
    Py_DECREF(key);
    if (row == NULL) {
        if (PyErr_Occurred()) { return NULL; }
        PyObject *made = PyObject_CallOneArg(c->classify, (PyObject *)t);
        if (made == NULL) { return NULL; }
        Py_DECREF(made);
        key = PyLong_FromVoidPtr(t);
        if (key == NULL) { return NULL; }
        row = PyDict_GetItemWithError(c->kinds, key);
        Py_DECREF(key);
        if (row == NULL) {
            if (!PyErr_Occurred()) { PyErr_SetString(PyExc_RuntimeError, "c_kind did not record the class"); }
            return NULL;
        }
    }
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 2) {
        PyErr_SetString(PyExc_RuntimeError, "bad kind row");
        return NULL;
    }
    PyObject *kind = PyTuple_GET_ITEM(row, 1);
    if (!PyTuple_CheckExact(kind) || PyTuple_GET_SIZE(kind) < 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(kind, 1))) {
        PyErr_SetString(PyExc_RuntimeError, "bad kind");
        return NULL;
    }
    return kind;
}

/* The type name Renderer._type_name gives, as UTF-8 (borrowed from the
   kind or static), with its length in characters; NULL with an error set. */
static const char *tree_type_name(Tree *c, PyTypeObject *t, Py_ssize_t *size, Py_ssize_t *chars) {
    static const struct { PyTypeObject *t; const char *name; } builtin[] = {
        {&PyLong_Type, "int"}, {&PyUnicode_Type, "str"}, {&PyFloat_Type, "float"}, {&PyBool_Type, "bool"},
        {&PyBytes_Type, "bytes"}, {&PyList_Type, "list"}, {&PyTuple_Type, "tuple"}, {&PyDict_Type, "dict"},
        {&PySet_Type, "set"}, {&PyFrozenSet_Type, "frozenset"}, {&PyComplex_Type, "complex"},
    };
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        if (builtin[i].t == t) {
            *size = *chars = (Py_ssize_t)strlen(builtin[i].name);
            return builtin[i].name;
        }
    }
    if (t == Py_TYPE(Py_None)) { *size = *chars = 8; return "NoneType"; }
    PyObject *kind = tree_kind(c, t);
    if (kind == NULL) { return NULL; }
    PyObject *name = PyTuple_GET_ITEM(kind, 1);
    *chars = PyUnicode_GET_LENGTH(name);
    return PyUnicode_AsUTF8AndSize(name, size);
}

/* Whether a child shown under ``key`` is a secret (Renderer._child). */
static int tree_secret(Tree *c, PyObject *key) {
    if (c->redact == NULL || key == NULL || key == Py_None) { return 0; }
    /* Renderer._secret_key matches str and bytes keys (and subclasses) only */
    if (!PyUnicode_Check(key) && !PyBytes_Check(key)) { return 0; }
    int exact = PyUnicode_CheckExact(key);
    if (exact && c->secret_names != NULL) {
        /* a field name is matched at every rendering of its object: once is enough */
        PyObject *known = PyDict_GetItemWithError(c->secret_names, key);
        if (known != NULL) { return known == Py_True; }
        if (PyErr_Occurred()) { return -1; }
    }
    PyObject *hit = exact ? PyObject_CallOneArg(c->redact, key) : PyObject_CallOneArg(c->secret_key, key);
    if (hit == NULL) { return -1; }
    int secret = hit != Py_None && hit != Py_False;
    Py_DECREF(hit);
    if (exact && c->secret_names != NULL && PyDict_GET_SIZE(c->secret_names) < 4096 &&
        PyDict_SetItem(c->secret_names, key, secret ? Py_True : Py_False) < 0) {
        return -1;
    }
    return secret;
}

/* A node's JSON head: {"type":"NAME","repr":"TEXT"  (no closing brace). */
static int tree_put_leaf(TextBuf *json, const char *name, Py_ssize_t name_size, const char *text, size_t n) {
    return text_put(json, "{\"type\":\"", 9) < 0 || text_put_json(json, name, (size_t)name_size) < 0 ||
           text_put(json, "\",\"repr\":\"", 10) < 0 || text_put_json(json, text, n) < 0 ||
           text_put(json, "\"", 1) < 0 ? -1 : 0;
}

/* Whether ``text`` is an int as JSON writes it: -?(0|[1-9][0-9]*). */
static int is_json_int(const char *s, size_t n) {
    size_t i = n && s[0] == '-' ? 1 : 0;
    if (i >= n) { return 0; }
    if (s[i] == '0') { return i + 1 == n; }
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') { return 0; }
    }
    return 1;
}

/* Whether ``text`` is a JSON number with a fraction or an exponent (a
   float's repr but inf and nan).  The texts C writes are the interpreter's
   repr of an exact float, so this is forms.py's rule for them. */
static int is_json_float(const char *s, size_t n) {
    size_t i = n && s[0] == '-' ? 1 : 0, start;
    if (i >= n || s[i] < '0' || s[i] > '9') { return 0; }
    if (s[i] == '0') { i++; } else { while (i < n && s[i] >= '0' && s[i] <= '9') { i++; } }
    int more = 0;
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; }
        if (i == start) { return 0; }
        more = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) { i++; }
        start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; }
        if (i == start) { return 0; }
        more = 1;
    }
    return more && i == n;
}

/* A whole leaf, as forms.py stores it: a str as its repr in a JSON string,
   an int or float whose repr is a JSON number as that number, True, False
   and None as true, false and null; anything else {"type":..,"repr":..}. */
static int tree_put_value_leaf(TextBuf *json, const char *name, Py_ssize_t name_size, const char *text, size_t n) {
    if (name_size == 3 && memcmp(name, "str", 3) == 0) {
        return text_put(json, "\"", 1) < 0 || text_put_json(json, text, n) < 0 || text_put(json, "\"", 1) < 0
               ? -1 : 0;
    }
    if ((name_size == 3 && memcmp(name, "int", 3) == 0 && is_json_int(text, n)) ||
        (name_size == 5 && memcmp(name, "float", 5) == 0 && is_json_float(text, n))) {
        return text_put(json, text, n);
    }
    if (name_size == 4 && memcmp(name, "bool", 4) == 0 && ((n == 4 && memcmp(text, "True", 4) == 0) ||
                                                          (n == 5 && memcmp(text, "False", 5) == 0))) {
        return n == 4 ? text_put(json, "true", 4) : text_put(json, "false", 5);
    }
    if (name_size == 8 && memcmp(name, "NoneType", 8) == 0 && n == 4 && memcmp(text, "None", 4) == 0) {
        return text_put(json, "null", 4);
    }
    return tree_put_leaf(json, name, name_size, text, n) < 0 || text_put(json, "}", 1) < 0 ? -1 : 0;
}

static int tree_form(Tree *c, PyObject *v, Py_ssize_t depth, int top, TextBuf *repr, TextBuf *json,
                     int *trunc, int *redacted);

/* Renderer._child: a value inside another, rendered into ``repr`` (its
   text) and ``json`` (its form).  1 done, 0 Python must render the whole
   value, -1 error. */
static int tree_child(Tree *c, PyObject *v, Py_ssize_t depth, PyObject *key, TextBuf *repr, TextBuf *json,
                      int *trunc, int *redacted) {
    PyTypeObject *t = Py_TYPE(v);
    Py_ssize_t name_size, name_chars;
    int secret = tree_secret(c, key);
    if (secret < 0) { return -1; }
    if (secret) {
        const char *name = tree_type_name(c, t, &name_size, &name_chars);
        if (name == NULL) { return -1; }
        *redacted = 1;
        return text_put(repr, "<redacted>", 10) < 0 ||
               tree_put_value_leaf(json, name, name_size, "<redacted>", 10) < 0 ? -1 : 1;
    }
    c->left -= 2;
    if (t == &PyLong_Type || t == &PyUnicode_Type || t == &PyFloat_Type || t == &PyBool_Type ||
        t == &PyBytes_Type || v == Py_None || t == &PyComplex_Type) {
        return tree_form(c, v, depth, 0, repr, json, trunc, redacted);
    }
    if (depth >= c->max_depth || c->left <= 0) {
        const char *name = tree_type_name(c, t, &name_size, &name_chars);
        if (name == NULL) { return -1; }
        size_t start = repr->len;
        if (text_put(repr, "<", 1) < 0 || text_put(repr, name, (size_t)name_size) < 0 ||
            text_put(repr, ELLIPSIS ">", 4) < 0) {
            return -1;
        }
        c->left -= name_chars + 3;
        *trunc = 1;
        return tree_put_value_leaf(json, name, name_size, repr->p + start, repr->len - start) < 0 ? -1 : 1;
    }
    return tree_form(c, v, depth, 0, repr, json, trunc, redacted);
}

/* The items of an exact list, tuple, set or frozenset (up to max_items), or
   the key/value pairs of an exact dict, as a new list: held while they are
   rendered, so a finalizer run by an allocation cannot free them. */
static PyObject *tree_items(Tree *c, PyObject *v, Py_ssize_t *size) {
    if (PyList_Check(v)) {
        *size = PyList_GET_SIZE(v);
        return PyList_GetSlice(v, 0, *size < c->max_items ? *size : c->max_items);
    }
    if (PyTuple_Check(v)) {
        *size = PyTuple_GET_SIZE(v);
        PyObject *items = PyTuple_GetSlice(v, 0, *size < c->max_items ? *size : c->max_items);
        if (items == NULL) { return NULL; }
        PyObject *list = PySequence_List(items);
        Py_DECREF(items);
        return list;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) { return NULL; }
    if (PyDict_Check(v)) {
        *size = PyDict_GET_SIZE(v);
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        while (PyList_GET_SIZE(out) < c->max_items && PyDict_Next(v, &pos, &k, &x)) {
            PyObject *pair = PyTuple_Pack(2, k, x);
            if (pair == NULL || PyList_Append(out, pair) < 0) { Py_XDECREF(pair); Py_DECREF(out); return NULL; }
            Py_DECREF(pair);
        }
        return out;
    }
    /* the base type's iterator: a subclass's own __iter__ is user code */
    *size = PySet_GET_SIZE(v);
    PyObject *it = (PySet_Check(v) ? PySet_Type.tp_iter : PyFrozenSet_Type.tp_iter)(v);
    if (it == NULL) { Py_DECREF(out); return NULL; }
    PyObject *x;
    while (PyList_GET_SIZE(out) < c->max_items && (x = PyIter_Next(it)) != NULL) {
        int rc = PyList_Append(out, x);
        Py_DECREF(x);
        if (rc < 0) { break; }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    return out;
}

static int tree_fields(Tree *c, PyObject *v, PyObject *getter, PyObject *slots, Py_ssize_t depth, TextBuf *repr,
                       TextBuf *fields, int *trunc, int *redacted, Py_ssize_t *count);

/* Renderer._container: an exact builtin container (``kind`` NULL) or a
   subclass (``kind`` (KIND_CONTAINER, name, dict getter, slots)), read
   through the base type; a subclass shows ``Name(...)`` and its fields. */
static int tree_container(Tree *c, PyObject *v, PyObject *kind, Py_ssize_t depth, int top, TextBuf *repr,
                          TextBuf *json, int *trunc, int *redacted) {
    int is_dict = PyDict_Check(v), is_tuple = PyTuple_Check(v), is_set = PyAnySet_Check(v);
    Py_ssize_t size = 0, name_size, name_chars;
    const char *name;
    if (kind == NULL) {
        name = tree_type_name(c, Py_TYPE(v), &name_size, &name_chars);
    } else {
        name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kind, 1), &name_size);
    }
    if (name == NULL) { return -1; }
    PyObject *items = tree_items(c, v, &size);
    if (items == NULL) { return -1; }
    const char *open = "[", *close = "]";
    if (is_tuple) { open = "("; close = size == 1 ? ",)" : ")"; }
    else if (is_dict) { open = "{"; close = "}"; }
    else if (is_set) { open = size ? "{" : "set("; close = size ? "}" : ")"; }
    size_t start = repr->len;
    TextBuf fields = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    int rc = -1;
    char digits[24];
    size_t nd = format_int(digits, size);
    if (!top && (text_put(json, "{\"type\":\"", 9) < 0 || text_put_json(json, name, (size_t)name_size) < 0 ||
                 text_put(json, "\",", 2) < 0)) {
        goto done;
    }
    if ((top && text_put(json, "{", 1) < 0) || text_put(json, "\"len\":", 6) < 0 || text_put(json, digits, nd) < 0 ||
        text_put(json, is_dict ? ",\"entries\":[" : ",\"items\":[", is_dict ? 12 : 10) < 0 ||
        (kind != NULL && (text_put(repr, name, (size_t)name_size) < 0 || text_put(repr, "(", 1) < 0)) ||
        text_put(repr, open, strlen(open)) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (i && (text_put(repr, ", ", 2) < 0 || text_put(json, ",", 1) < 0)) { goto done; }
        int r;
        if (is_dict) {
            PyObject *k = PyTuple_GET_ITEM(item, 0), *x = PyTuple_GET_ITEM(item, 1);
            if (text_put(json, "[", 1) < 0) { goto done; }
            r = tree_child(c, k, depth + 1, NULL, repr, json, trunc, redacted);
            if (r <= 0) { rc = r; goto done; }
            if (text_put(repr, ": ", 2) < 0 || text_put(json, ",", 1) < 0) { goto done; }
            r = tree_child(c, x, depth + 1, k, repr, json, trunc, redacted);
            if (r <= 0) { rc = r; goto done; }
            if (text_put(json, "]", 1) < 0) { goto done; }
        } else {
            r = tree_child(c, item, depth + 1, NULL, repr, json, trunc, redacted);
            if (r <= 0) { rc = r; goto done; }
        }
    }
    if (size > c->max_items) {
        *trunc = 1;
        if (text_put(repr, ", " ELLIPSIS, 5) < 0) { goto done; }
    }
    if (text_put(repr, close, strlen(close)) < 0 || text_put(json, "]", 1) < 0) { goto done; }
    if (kind != NULL) {
        /* the fields are in the form only: their text goes to a scratch buffer */
        Py_ssize_t shown = 0;
        int r = tree_fields(c, v, PyTuple_GET_ITEM(kind, 2), PyTuple_GET_ITEM(kind, 3), depth, &scratch, &fields,
                            trunc, redacted, &shown);
        if (r <= 0) { rc = r; goto done; }
        if (text_put(repr, ")", 1) < 0) { goto done; }
        if (shown && (text_put(json, ",\"fields\":{", 11) < 0 || text_put(json, fields.p, fields.len) < 0 ||
                      text_put(json, "}", 1) < 0)) {
            goto done;
        }
    }
    /* an exact builtin's text is rebuilt from its items (forms.py); a
       subclass's shows its name and keeps it */
    if (!top && kind != NULL && (text_put(json, ",\"repr\":\"", 9) < 0 ||
                 text_put_json(json, repr->p + start, repr->len - start) < 0 || text_put(json, "\"", 1) < 0)) {
        goto done;
    }
    rc = text_put(json, "}", 1) < 0 ? -1 : 1;
done:
    Py_DECREF(items);
    PyMem_Free(fields.p);
    PyMem_Free(scratch.p);
    return rc;
}

/* Renderer._fields: the instance dict's str keys, then the slots, through
   the C getters the kind names: ``k=text, ...`` into ``repr``, ``"k":form,...``
   into ``fields``.  1 done, 0 Python must render, -1 error. */
static int tree_fields(Tree *c, PyObject *v, PyObject *getter, PyObject *slots, Py_ssize_t depth, TextBuf *repr,
                       TextBuf *fields, int *trunc, int *redacted, Py_ssize_t *count) {
    PyObject *ns = NULL, *names = NULL;
    /* the first max_items keys and values, each held while rendered (a
       finalizer run by an allocation could change the dict) */
    PyObject *local[2 * 32], **pairs = local;
    Py_ssize_t npairs = 0;
    int rc = -1;
    Py_ssize_t shown = 0;
    names = PyList_New(0);
    if (names == NULL) { goto done; }
    if (getter != Py_None) {
        ns = PyObject_CallOneArg(getter, v);
        if (ns == NULL) { goto done; }  /* Python renders it and decides what that means */
        if (PyDict_CheckExact(ns)) {
            Py_ssize_t want = PyDict_GET_SIZE(ns) < c->max_items ? PyDict_GET_SIZE(ns) : c->max_items, pos = 0;
            if (want > 32 && (pairs = PyMem_New(PyObject *, 2 * want)) == NULL) {
                pairs = local;
                PyErr_NoMemory();
                goto done;
            }
            PyObject *k, *x;
            while (npairs < want && PyDict_Next(ns, &pos, &k, &x)) {
                pairs[2 * npairs] = Py_NewRef(k);
                pairs[2 * npairs + 1] = Py_NewRef(x);
                npairs++;
            }
        }
    }
    for (Py_ssize_t i = 0; i < npairs; i++) {
        PyObject *k = pairs[2 * i], *x = pairs[2 * i + 1];
        if (!PyUnicode_CheckExact(k)) { continue; }
        Py_ssize_t ks;
        const char *kt = PyUnicode_AsUTF8AndSize(k, &ks);
        if (kt == NULL) { goto done; }  /* a lone surrogate: Python renders it */
        if ((shown && (text_put(repr, ", ", 2) < 0 || text_put(fields, ",", 1) < 0)) ||
            text_put(repr, kt, (size_t)ks) < 0 || text_put(repr, "=", 1) < 0 ||
            text_put(fields, "\"", 1) < 0 || text_put_json(fields, kt, (size_t)ks) < 0 ||
            text_put(fields, "\":", 2) < 0 || PyList_Append(names, k) < 0) {
            goto done;
        }
        int r = tree_child(c, x, depth + 1, k, repr, fields, trunc, redacted);
        if (r <= 0) { rc = r; goto done; }
        shown++;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(slots); i++) {
        if (shown >= c->max_items) { break; }
        PyObject *pair = PyTuple_GET_ITEM(slots, i);
        PyObject *slot = PyTuple_GET_ITEM(pair, 0);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(names); j++) {
            int same = PyUnicode_Compare(slot, PyList_GET_ITEM(names, j));
            if (same == 0) { rc = 0; goto done; }  /* a slot named like a dict key: Python's dict order */
            if (same == -1 && PyErr_Occurred()) { goto done; }
        }
        PyObject *x = PyObject_CallOneArg(PyTuple_GET_ITEM(pair, 1), v);
        if (x == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) { PyErr_Clear(); continue; }
            goto done;
        }
        Py_ssize_t ks;
        const char *kt = PyUnicode_AsUTF8AndSize(slot, &ks);
        int r = -1;
        if (kt != NULL &&
            !((shown && (text_put(repr, ", ", 2) < 0 || text_put(fields, ",", 1) < 0)) ||
              text_put(repr, kt, (size_t)ks) < 0 || text_put(repr, "=", 1) < 0 ||
              text_put(fields, "\"", 1) < 0 || text_put_json(fields, kt, (size_t)ks) < 0 ||
              text_put(fields, "\":", 2) < 0 || PyList_Append(names, slot) < 0)) {
            r = tree_child(c, x, depth + 1, slot, repr, fields, trunc, redacted);
        }
        Py_DECREF(x);
        if (r <= 0) { rc = r; goto done; }
        shown++;
    }
    *count = shown;
    rc = 1;
done:
    for (Py_ssize_t i = 0; i < 2 * npairs; i++) { Py_DECREF(pairs[i]); }
    if (pairs != local) { PyMem_Free(pairs); }
    Py_XDECREF(ns);
    Py_XDECREF(names);
    return rc;
}

/* Renderer._object: ``Name(field=value, ...)``. */
static int tree_object(Tree *c, PyObject *v, PyObject *kind, Py_ssize_t depth, int top, TextBuf *repr,
                       TextBuf *json, int *trunc, int *redacted) {
    Py_ssize_t name_size;
    const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kind, 1), &name_size);
    if (name == NULL) { return -1; }
    PyObject *getter = PyTuple_GET_ITEM(kind, 2), *slots = PyTuple_GET_ITEM(kind, 3);
    if (!PyTuple_CheckExact(slots)) { PyErr_SetString(PyExc_RuntimeError, "bad kind"); return -1; }
    size_t start = repr->len;
    if (getter == Py_None && PyTuple_GET_SIZE(slots) == 0) {
        if (text_put(repr, "<", 1) < 0 || text_put(repr, name, (size_t)name_size) < 0 ||
            text_put(repr, " object>", 8) < 0) {
            return -1;
        }
        if (top) { return 2; }  /* no form: the detail is None */
        return tree_put_value_leaf(json, name, (size_t)name_size, repr->p + start, repr->len - start) < 0 ? -1 : 1;
    }
    /* the fields' forms go first into their own buffer: the object's form
       holds its text before them */
    TextBuf fields = {NULL, 0, 0};
    Py_ssize_t shown = 0;
    int rc = -1;
    if (text_put(repr, name, (size_t)name_size) < 0 || text_put(repr, "(", 1) < 0) { goto done; }
    rc = tree_fields(c, v, getter, slots, depth, repr, &fields, trunc, redacted, &shown);
    if (rc <= 0) { goto done; }
    rc = -1;
    if (text_put(repr, ")", 1) < 0) { goto done; }
    if (top) {
        rc = text_put(json, "{\"fields\":{", 11) < 0 || text_put(json, fields.p ? fields.p : "", fields.len) < 0 ||
             text_put(json, "}}", 2) < 0 ? -1 : 1;
    } else {
        /* no repr: forms.py rebuilds Name(field=value, ...) from the fields */
        rc = text_put(json, "{\"type\":\"", 9) < 0 || text_put_json(json, name, (size_t)name_size) < 0 ||
             text_put(json, "\",\"fields\":{", 12) < 0 || text_put(json, fields.p ? fields.p : "", fields.len) < 0 ||
             text_put(json, "}}", 2) < 0 ? -1 : 1;
    }
done:
    PyMem_Free(fields.p);
    return rc;
}

/* The first five of an exception's args, read through BaseException's
   own slot (a subclass may define ``args`` as a property: user code), as a
   new tuple; an empty one when the slot holds no tuple. */
static PyObject *exception_args(PyObject *v, Py_ssize_t limit) {
    PyObject *args = ((PyBaseExceptionObject *)v)->args;
    if (args == NULL || !PyTuple_CheckExact(args)) { return PyTuple_New(0); }
    return PyTuple_GetSlice(args, 0, limit);
}

/* Renderer._exception: ``Name(arg, ...)`` from its first five args, then
   its fields, which the form holds and the text does not show. */
static int tree_exception(Tree *c, PyObject *v, PyObject *kind, Py_ssize_t depth, int top, TextBuf *repr,
                          TextBuf *json, int *trunc, int *redacted) {
    Py_ssize_t name_size;
    const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kind, 1), &name_size);
    if (name == NULL) { return -1; }
    PyObject *getter = PyTuple_GET_ITEM(kind, 2), *slots = PyTuple_GET_ITEM(kind, 3);
    if (!PyTuple_CheckExact(slots)) { PyErr_SetString(PyExc_RuntimeError, "bad kind"); return -1; }
    PyObject *args = exception_args(v, 5);
    if (args == NULL) { return -1; }
    TextBuf argj = {NULL, 0, 0}, fields = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    Py_ssize_t shown = 0;
    int rc = -1;
    size_t start = repr->len;
    if (text_put(repr, name, (size_t)name_size) < 0 || text_put(repr, "(", 1) < 0) { goto done; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++) {
        if (i && (text_put(repr, ", ", 2) < 0 || text_put(&argj, ",", 1) < 0)) { goto done; }
        int r = tree_child(c, PyTuple_GET_ITEM(args, i), depth + 1, NULL, repr, &argj, trunc, redacted);
        if (r <= 0) { rc = r; goto done; }
    }
    if (text_put(repr, ")", 1) < 0) { goto done; }
    /* the fields are in the form only: their text goes to a scratch buffer */
    int r = tree_fields(c, v, getter, slots, depth, &scratch, &fields, trunc, redacted, &shown);
    if (r <= 0) { rc = r; goto done; }
    if (!top && (text_put(json, "{\"type\":\"", 9) < 0 || text_put_json(json, name, (size_t)name_size) < 0 ||
                 text_put(json, "\",\"repr\":\"", 10) < 0 ||
                 text_put_json(json, repr->p + start, repr->len - start) < 0 || text_put(json, "\",", 2) < 0)) {
        goto done;
    }
    if ((top && text_put(json, "{", 1) < 0) || text_put(json, "\"args\":[", 8) < 0 ||
        text_put(json, argj.p ? argj.p : "", argj.len) < 0 || text_put(json, "]", 1) < 0) {
        goto done;
    }
    if (shown && (text_put(json, ",\"fields\":{", 11) < 0 || text_put(json, fields.p, fields.len) < 0 ||
                  text_put(json, "}", 1) < 0)) {
        goto done;
    }
    rc = text_put(json, "}", 1) < 0 ? -1 : 1;
done:
    Py_DECREF(args);
    PyMem_Free(argj.p);
    PyMem_Free(fields.p);
    PyMem_Free(scratch.p);
    return rc;
}

/* ``<name qualname>``: Renderer._form for a function, a bound method, a
   builtin and a generator, coroutine or async generator. */
static int tree_named(Tree *c, PyObject *v, PyObject *name, int top, TextBuf *repr, TextBuf *json) {
    PyObject *of = v;
    PyTypeObject *t = Py_TYPE(v);
    PyObject *qual = NULL;
    if (t == &PyMethod_Type) {
        of = PyMethod_GET_FUNCTION(v);
        PyTypeObject *ft = Py_TYPE(of);
        if (ft != &PyFunction_Type && ft != &PyCFunction_Type) {
            Py_ssize_t size, chars;
            const char *fname = tree_type_name(c, ft, &size, &chars);
            if (fname == NULL) { return -1; }
            qual = PyUnicode_DecodeUTF8(fname, size, NULL);
        }
    }
    if (qual == NULL && !PyErr_Occurred()) { qual = PyObject_GetAttrString(of, "__qualname__"); }
    if (qual == NULL) { return -1; }
    if (!PyUnicode_CheckExact(qual)) { Py_DECREF(qual); return 0; }  /* its __format__ is Python's business */
    Py_ssize_t name_size, qual_size;
    const char *n = PyUnicode_AsUTF8AndSize(name, &name_size);
    const char *q = n ? PyUnicode_AsUTF8AndSize(qual, &qual_size) : NULL;
    int rc = -1;
    if (q != NULL) {
        size_t start = repr->len;
        if (text_put(repr, "<", 1) == 0 && text_put(repr, n, (size_t)name_size) == 0 && text_put(repr, " ", 1) == 0 &&
            text_put(repr, q, (size_t)qual_size) == 0 && text_put(repr, ">", 1) == 0) {
            rc = top ? 2 : tree_put_value_leaf(json, n, name_size, repr->p + start, repr->len - start) < 0 ? -1 : 1;
        }
    }
    Py_DECREF(qual);
    return rc;
}

/* A nested value C does not render (a compiled pattern, a Decimal, an enum
   member, a module...): Renderer.form_for_c renders it as Renderer._form
   would, from the same place in the text budget, and gives back its text,
   its stored form, its flags and the budget left; the rest of the value
   stays in C.  0 when there is no such callback (Python renders the whole
   value), 1 done, -1 error. */
static int tree_python_child(Tree *c, PyObject *v, Py_ssize_t depth, TextBuf *repr, TextBuf *json, int *trunc,
                             int *redacted) {
    if (c->python_child == NULL) { return 0; }
    PyObject *args[3] = {v, PyLong_FromSsize_t(depth), PyLong_FromSsize_t(c->left)};
    PyObject *got = args[1] && args[2] ? PyObject_Vectorcall(c->python_child, args, 3, NULL) : NULL;
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    if (got == NULL) { return -1; }
    int rc = -1;
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 4 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(got, 0)) ||
        !PyUnicode_CheckExact(PyTuple_GET_ITEM(got, 1)) || !PyLong_CheckExact(PyTuple_GET_ITEM(got, 2)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(got, 3))) {
        PyErr_SetString(PyExc_RuntimeError, "form_for_c gave no (text, form, flags, left)");
        goto done;
    }
    Py_ssize_t ts, js;
    const char *text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(got, 0), &ts);
    const char *form = text ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(got, 1), &js) : NULL;
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(got, 2));
    Py_ssize_t left = PyLong_AsSsize_t(PyTuple_GET_ITEM(got, 3));
    if (form == NULL || PyErr_Occurred()) { goto done; }
    if (text_put(repr, text, (size_t)ts) < 0 || text_put(json, form, (size_t)js) < 0) { goto done; }
    if (flags & 1) { *trunc = 1; }
    if (flags & 2) { *redacted = 1; }
    c->left = left;
    rc = 1;
done:
    Py_DECREF(got);
    return rc;
}

/* Renderer._form for what C renders: 1 done, 2 done with no form (an
   object without fields, at the top), 0 Python must render, -1 error. */
static int tree_form(Tree *c, PyObject *v, Py_ssize_t depth, int top, TextBuf *repr, TextBuf *json,
                     int *trunc, int *redacted) {
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyLong_Type || t == &PyUnicode_Type || t == &PyFloat_Type || t == &PyBool_Type ||
        t == &PyBytes_Type || v == Py_None) {
        if (top) { return 0; }  /* render_scalar's business */
        size_t start = repr->len;
        Py_ssize_t chars = 0;
        const char *name = NULL;
        int r = put_scalar_text(repr, v, c->max_size, &chars, &name);
        if (r <= 0) { return r; }
        c->left -= chars;
        return tree_put_value_leaf(json, name, (Py_ssize_t)strlen(name), repr->p + start, repr->len - start) < 0 ? -1 : 1;
    }
    if (t == &PyList_Type || t == &PyTuple_Type || t == &PyDict_Type || t == &PySet_Type ||
        t == &PyFrozenSet_Type) {
        return tree_container(c, v, NULL, depth, top, repr, json, trunc, redacted);
    }
    if (t == &PyComplex_Type) { return top ? 0 : tree_python_child(c, v, depth, repr, json, trunc, redacted); }
    PyObject *kind = tree_kind(c, t);
    if (kind == NULL) { return -1; }
    long k = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
    if (k == -1 && PyErr_Occurred()) { return -1; }
    if (k == KIND_OPAQUE) {
        Py_ssize_t name_size;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kind, 1), &name_size);
        if (name == NULL) { return -1; }
        size_t start = repr->len;
        if (text_put(repr, "<", 1) < 0 || text_put(repr, name, (size_t)name_size) < 0 || text_put(repr, ">", 1) < 0) {
            return -1;
        }
        if (top) { return 2; }
        return tree_put_value_leaf(json, name, name_size, repr->p + start, repr->len - start) < 0 ? -1 : 1;
    }
    if (k == KIND_OBJECT && PyTuple_GET_SIZE(kind) == 4) {
        return tree_object(c, v, kind, depth, top, repr, json, trunc, redacted);
    }
    if (k == KIND_CLASS && PyType_Check(v)) {
        /* <class 'qualname'>, type name "type" whatever the metaclass, as
           Renderer._form shows a class; its qualname through the type's own
           slot, never a metaclass's __qualname__ property */
        PyObject *qual = PyType_GetQualName((PyTypeObject *)v);
        if (qual == NULL) { PyErr_Clear(); return 0; }
        Py_ssize_t qual_size;
        const char *q = PyUnicode_AsUTF8AndSize(qual, &qual_size);
        if (q == NULL) { Py_DECREF(qual); PyErr_Clear(); return 0; }  /* a lone surrogate: Python renders it */
        size_t start = repr->len;
        int bad = text_put(repr, "<class '", 8) < 0 || text_put(repr, q, (size_t)qual_size) < 0 ||
                  text_put(repr, "'>", 2) < 0;
        Py_DECREF(qual);
        if (bad) { return -1; }
        if (top) { c->top_is_class = 1; return 2; }
        return tree_put_value_leaf(json, "type", 4, repr->p + start, repr->len - start) < 0 ? -1 : 1;
    }
    if (k == KIND_NAMED) {
        return tree_named(c, v, PyTuple_GET_ITEM(kind, 1), top, repr, json);
    }
    if (k == KIND_EXCEPTION && PyTuple_GET_SIZE(kind) == 4 && PyExceptionInstance_Check(v)) {
        return tree_exception(c, v, kind, depth, top, repr, json, trunc, redacted);
    }
    if (k == KIND_CONTAINER && PyTuple_GET_SIZE(kind) == 4 && PyTuple_CheckExact(PyTuple_GET_ITEM(kind, 3)) &&
        (PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v) || PyAnySet_Check(v))) {
        return tree_container(c, v, kind, depth, top, repr, json, trunc, redacted);
    }
    if (k == KIND_PYTHON && !top) { return tree_python_child(c, v, depth, repr, json, trunc, redacted); }
    return 0;
}

/* render_tree(value, max_size, max_items, max_depth, redact_search, secret_key, kinds, classify[,
               secret_names[, python_child]])
   -> (type name, text, detail JSON or None, flags) or None.

   Renderer.render in C for nested exact lists, tuples, dicts, sets and
   frozensets of scalars, and for instances the renderer shows field by
   field (``c_kind`` says which classes those are, once per class).  An
   object that changes at every step is rendered at every step: in Python
   that is a dict per shown item and a JSON encoding, 200-600 us for a
   cache object of a few hundred shown items.  The result equals Python's
   (a test compares both on random trees).  A nested value C does not
   render (a compiled pattern, a Decimal, an enum member) is rendered by
   ``python_child`` when given; without it, and for a top-level value C
   does not render, None: Python renders the whole value. */
static PyObject *render_tree(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 8 || nargs > 10) {
        PyErr_SetString(PyExc_TypeError, "render_tree() takes 8 to 10 arguments");
        return NULL;
    }
    Tree c = {0};
    c.max_size = PyLong_AsSsize_t(args[1]);
    c.max_items = PyLong_AsSsize_t(args[2]);
    c.max_depth = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) { return NULL; }
    if (!PyDict_CheckExact(args[6]) || c.max_size < 1 || c.max_items < 0) { Py_RETURN_NONE; }
    c.left = c.max_size;
    c.redact = args[4] == Py_None ? NULL : args[4];
    c.secret_key = args[5];
    c.kinds = args[6];
    c.classify = args[7];
    c.secret_names = nargs >= 9 && PyDict_CheckExact(args[8]) ? args[8] : NULL;
    c.python_child = nargs == 10 && args[9] != Py_None ? args[9] : NULL;
    PyObject *value = args[0];
    TextBuf repr = {NULL, 0, 0}, json = {NULL, 0, 0};
    int trunc = 0, redacted = 0;
    PyObject *result = NULL;
    int rc = tree_form(&c, value, 0, 1, &repr, &json, &trunc, &redacted);
    if (rc < 0) { goto done; }
    if (rc == 0) { result = Py_NewRef(Py_None); goto done; }
    Py_ssize_t name_size = 4, name_chars;
    const char *name = c.top_is_class ? "type" : tree_type_name(&c, Py_TYPE(value), &name_size, &name_chars);
    if (name == NULL) { goto done; }
    PyObject *text = PyUnicode_DecodeUTF8(repr.p ? repr.p : "", (Py_ssize_t)repr.len, NULL);
    if (text == NULL) { goto done; }
    long flags = (trunc ? 1 : 0) | (redacted ? 2 : 0);  /* schema.FLAG_TRUNCATED, FLAG_REDACTED */
    if (PyUnicode_GET_LENGTH(text) > c.max_size) {
        PyObject *head = PyUnicode_Substring(text, 0, c.max_size - 1);
        Py_SETREF(text, head ? PyUnicode_FromFormat("%U%s", head, ELLIPSIS) : NULL);
        Py_XDECREF(head);
        if (text == NULL) { goto done; }
        flags |= 1;
    }
    PyObject *detail = rc == 2 ? Py_NewRef(Py_None) : PyUnicode_DecodeUTF8(json.p, (Py_ssize_t)json.len, NULL);
    if (detail == NULL) { Py_DECREF(text); goto done; }
    PyObject *tname = PyUnicode_DecodeUTF8(name, name_size, NULL);
    if (tname == NULL) { Py_DECREF(text); Py_DECREF(detail); goto done; }
    result = Py_BuildValue("(NNNl)", tname, text, detail, flags);
done:
    PyMem_Free(repr.p);
    PyMem_Free(json.p);
    return result;
}

/* -- fingerprint_tree: values.fingerprint and kept_alive for what render_tree renders ---- */

static int fp_is_scalar(PyObject *v) {
    PyTypeObject *t = Py_TYPE(v);
    return t == &PyLong_Type || t == &PyUnicode_Type || t == &PyFloat_Type || t == &PyBool_Type ||
           t == &PyBytes_Type || v == Py_None || t == &PyComplex_Type;
}

/* A fingerprint is packed: one native 64-bit word per int of
   values.fingerprint's tuple (an id or a length), FP_NONE for None, and a
   nested tuple between FP_OPEN and FP_CLOSE (values.packed_fingerprint).
   No id or length takes these values, so equal bytes are equal tuples; a
   row of Collector.objs holds one bytes object instead of a tuple of
   Python ints, and making one allocates nothing per item. */
#define FP_OPEN ((uint64_t)0xFFFFFFFFFFFFFFF1ULL)
#define FP_CLOSE ((uint64_t)0xFFFFFFFFFFFFFFF2ULL)
#define FP_NONE ((uint64_t)0xFFFFFFFFFFFFFFF3ULL)

static int fp_word(TextBuf *out, uint64_t w) {
    return text_put(out, (const char *)&w, sizeof w);
}

/* id(x) into ``out``. */
static int fp_id(TextBuf *out, PyObject *x) {
    return fp_word(out, (uint64_t)(uintptr_t)x);
}

static int fp_int(TextBuf *out, Py_ssize_t n) {
    return fp_word(out, (uint64_t)n);
}

/* The kind of an instance's class when it is shown field by field (a new
   reference to its dict getter in *getter, its slots in *slots), 0 when
   Python must decide, -1 on error. */
static int fp_object_kind(Tree *c, PyObject *v, PyObject **getter, PyObject **slots) {
    PyObject *kind = tree_kind(c, Py_TYPE(v));
    if (kind == NULL) { return -1; }
    long k = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
    if (k == -1 && PyErr_Occurred()) { return -1; }
    if ((k != KIND_OBJECT && k != KIND_NAMED && !(k == KIND_EXCEPTION && PyExceptionInstance_Check(v))) ||
        PyTuple_GET_SIZE(kind) != 4 || !PyTuple_CheckExact(PyTuple_GET_ITEM(kind, 3))) {
        return 0;
    }
    *getter = PyTuple_GET_ITEM(kind, 2);
    *slots = PyTuple_GET_ITEM(kind, 3);
    return 1;
}

/* Whether ``v`` is a class shown as one (kind KIND_CLASS): 1, 0, or -1. */
static int fp_is_class(Tree *c, PyObject *v) {
    PyObject *kind = tree_kind(c, Py_TYPE(v));
    if (kind == NULL) { return -1; }
    long k = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
    if (k == -1 && PyErr_Occurred()) { return -1; }
    return k == KIND_CLASS;
}

/* The instance dict through ``getter`` (a new reference, or NULL with no
   error when there is none or it is not an exact dict). */
static PyObject *fp_instance_dict(PyObject *getter, PyObject *v) {
    if (getter == Py_None) { return NULL; }
    PyObject *ns = PyObject_CallOneArg(getter, v);
    if (ns == NULL) { return NULL; }
    if (!PyDict_CheckExact(ns)) { Py_DECREF(ns); return NULL; }
    return ns;
}

/* values._nested_print into ``out``: FP_NONE, or the tuple between FP_OPEN
   and FP_CLOSE.  0, or -1 (an error, or *declined set when Python must make
   the whole fingerprint). */
static int fp_nested(Tree *c, PyObject *v, TextBuf *out, int *declined) {
    if (fp_is_scalar(v)) { return fp_word(out, FP_NONE); }
    PyTypeObject *t = Py_TYPE(v);
    size_t mark = out->len;
    if (fp_word(out, FP_OPEN) < 0) { return -1; }
    /* a container subclass (kind 4) is read as its base type, as
       values._nested_print reads it: a list's or dict's items, a set's size,
       a tuple's instance dict */
    int base_list = t == &PyList_Type, base_dict = t == &PyDict_Type;
    int base_set = t == &PySet_Type || t == &PyFrozenSet_Type;
    PyObject *sub_getter = NULL;
    if (!base_list && !base_dict && !base_set && t != &PyTuple_Type &&
        (PyList_Check(v) || PyDict_Check(v) || PyAnySet_Check(v) || PyTuple_Check(v))) {
        PyObject *kind = tree_kind(c, t);
        if (kind == NULL) { goto fail; }
        long kk = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
        if (kk == -1 && PyErr_Occurred()) { goto fail; }
        if (kk != KIND_CONTAINER || PyTuple_GET_SIZE(kind) != 4) { *declined = 1; goto fail; }
        base_list = PyList_Check(v);
        base_dict = PyDict_Check(v);
        base_set = PyAnySet_Check(v);
        if (!base_list && !base_dict && !base_set) { sub_getter = PyTuple_GET_ITEM(kind, 2); }
    }
    if (base_list) {
        Py_ssize_t n = PyList_GET_SIZE(v);
        PyObject *items = PyList_GetSlice(v, 0, n < 10 ? n : 10);
        if (items == NULL || fp_int(out, n) < 0) { Py_XDECREF(items); goto fail; }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
            if (fp_id(out, PyList_GET_ITEM(items, i)) < 0) { Py_DECREF(items); goto fail; }
        }
        Py_DECREF(items);
    } else if (base_dict) {
        if (fp_int(out, PyDict_GET_SIZE(v)) < 0) { goto fail; }
        Py_ssize_t pos = 0, i = 0;
        PyObject *k, *x;
        while (i++ < 10 && PyDict_Next(v, &pos, &k, &x)) {
            if (fp_id(out, x) < 0) { goto fail; }
        }
    } else if (base_set) {
        if (fp_int(out, PySet_GET_SIZE(v)) < 0) { goto fail; }
    } else if (t == &PyTuple_Type) {
        out->len = mark;
        return fp_word(out, FP_NONE);
    } else {
        if (PyType_Check(v)) {
            int is_class = fp_is_class(c, v);
            if (is_class < 0) { goto fail; }
            if (is_class) {
                out->len = mark;  /* values._nested_print of a class: its namespace is no dict */
                return fp_word(out, FP_NONE);
            }
        }
        PyObject *getter = sub_getter, *slots = NULL;
        int k = sub_getter != NULL ? 1 : fp_object_kind(c, v, &getter, &slots);
        if (k == 0) {
            /* shown in Python or as <name>: the nested print is still its
               instance dict's, through the getter c_kind recorded */
            PyObject *kind = tree_kind(c, t);
            if (kind == NULL) { goto fail; }
            long kk = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
            if ((kk == KIND_PYTHON || kk == KIND_OPAQUE) && PyTuple_GET_SIZE(kind) == 3) {
                getter = PyTuple_GET_ITEM(kind, 2);
                k = 1;
            } else if (kk == -1 && PyErr_Occurred()) {
                goto fail;
            }
        }
        if (k <= 0) {
            if (k == 0) { *declined = 1; }
            goto fail;
        }
        PyObject *ns = fp_instance_dict(getter, v);
        if (ns == NULL) {
            if (PyErr_Occurred()) { return -1; }
            out->len = mark;
            return fp_word(out, FP_NONE);
        }
        int rc = fp_int(out, PyDict_GET_SIZE(ns));
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *x;
        while (rc == 0 && i++ < 10 && PyDict_Next(ns, &pos, &key, &x)) { rc = fp_id(out, x); }
        Py_DECREF(ns);
        if (rc < 0) { goto fail; }
    }
    return fp_word(out, FP_CLOSE);
fail:
    return -1;
}

/* ids of the ``n`` objects of ``xs``, then, unless all are scalars and
   ``shortcut``, the nested print of each; the scalars among them go to
   ``alive``.  The caller holds a reference to each. */
static int fp_refs(Tree *c, TextBuf *out, PyObject *alive, PyObject *const *xs, Py_ssize_t n, int shortcut,
                   int *declined) {
    int all_scalars = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = xs[i];
        if (fp_id(out, x) < 0) { return -1; }
        if (fp_is_scalar(x)) {
            if (alive != NULL && PyList_Append(alive, x) < 0) { return -1; }
        } else {
            all_scalars = 0;
        }
    }
    if (shortcut && all_scalars) { return 0; }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (fp_nested(c, xs[i], out, declined) < 0) { return -1; }
    }
    return 0;
}

/* values._container_print of a list, tuple, dict, set or frozenset (or a
   subclass, read through its base type) into ``out``; the scalars it names
   (values._kept_items) into ``alive``. */
static int fp_namespace(Tree *c, PyObject *ns, TextBuf *out, PyObject *alive, int *declined);

static int fp_container(Tree *c, PyObject *v, TextBuf *out, PyObject *alive, int *declined) {
    if (PyFrozenSet_Check(v)) { return fp_int(out, PySet_GET_SIZE(v)); }
    /* a dict's print is an instance dict's: keys, values, the values' nested prints */
    if (PyDict_Check(v)) { return fp_namespace(c, v, out, alive, declined); }
    c->max_items = 30;
    Py_ssize_t size = 0;
    PyObject *items = tree_items(c, v, &size);
    if (items == NULL) { return -1; }
    int rc = fp_int(out, size);
    if (rc == 0 && PyAnySet_Check(v)) {
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++) {
            PyObject *x = PyList_GET_ITEM(items, i);
            rc = fp_id(out, x);
            if (rc == 0 && alive != NULL && fp_is_scalar(x)) { rc = PyList_Append(alive, x); }
        }
    } else if (rc == 0) {
        rc = fp_refs(c, out, alive, ((PyListObject *)items)->ob_item, PyList_GET_SIZE(items), 1, declined);
    }
    Py_DECREF(items);
    return rc;
}

/* An instance dict's part of a fingerprint: its length, the ids of its first
   30 keys and values, the values' nested prints; the scalars among the keys
   and values go to ``alive``. */
static int fp_namespace(Tree *c, PyObject *ns, TextBuf *out, PyObject *alive, int *declined) {
    /* the first 30 keys and values, each held while the values' nested
       prints run (a lookup of a class's kind can run the collector, and a
       finalizer could change the dict) */
    PyObject *keys[SHALLOW_LIMIT], *vals[SHALLOW_LIMIT], *k, *x;
    Py_ssize_t m = 0, pos = 0;
    while (m < SHALLOW_LIMIT && PyDict_Next(ns, &pos, &k, &x)) {
        keys[m] = Py_NewRef(k);
        vals[m] = Py_NewRef(x);
        m++;
    }
    int rc = fp_int(out, PyDict_GET_SIZE(ns));
    for (Py_ssize_t i = 0; rc == 0 && i < m; i++) {
        rc = fp_id(out, keys[i]);
        if (rc == 0 && alive != NULL && fp_is_scalar(keys[i])) { rc = PyList_Append(alive, keys[i]); }
    }
    if (rc == 0) { rc = fp_refs(c, out, alive, vals, m, 0, declined); }
    for (Py_ssize_t i = 0; i < m; i++) {
        Py_DECREF(keys[i]);
        Py_DECREF(vals[i]);
    }
    return rc;
}

/* The packed fingerprint of ``v`` into ``out``, the scalars it names into
   ``alive`` (NULL: not wanted).  1 done, 2 its fingerprint is () (an opaque
   object), 0 Python must make it (nothing usable in ``out``), -1 error. */
static int fp_value(Tree *c, PyObject *v, TextBuf *out, PyObject *alive) {
    PyTypeObject *t = Py_TYPE(v);
    if (fp_is_scalar(v)) { return 0; }
    PyObject *ns = NULL;
    int declined = 0, rc = -1;
    if (t == &PyList_Type || t == &PyTuple_Type || t == &PyDict_Type || t == &PySet_Type ||
        t == &PyFrozenSet_Type) {
        if (fp_container(c, v, out, alive, &declined) < 0) { goto done; }
        rc = 1;
        goto done;
    }
    PyObject *getter = NULL, *slots = NULL;
    PyObject *kind = tree_kind(c, t);
    if (kind == NULL) { goto done; }
    long k = PyLong_AsLong(PyTuple_GET_ITEM(kind, 0));
    if (k == -1 && PyErr_Occurred()) { goto done; }
    int container = PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v) || PyAnySet_Check(v);
    if (k == KIND_OPAQUE) {
        /* a container subclass shows its fields too: Python's */
        rc = container ? 0 : 2;
        goto done;
    }
    if (k == KIND_CONTAINER && container && PyTuple_GET_SIZE(kind) == 4) {
        /* (the container's print, the fields' print) when it has an instance dict */
        size_t mark = out->len;
        if (fp_word(out, FP_OPEN) < 0 || fp_container(c, v, out, alive, &declined) < 0 ||
            fp_word(out, FP_CLOSE) < 0) {
            goto done;
        }
        ns = fp_instance_dict(PyTuple_GET_ITEM(kind, 2), v);
        if (ns == NULL && PyErr_Occurred()) { goto done; }
        if (ns == NULL) {
            /* the container's print alone: drop the brackets around it */
            size_t inner = out->len - mark - 2 * sizeof(uint64_t);
            memmove(out->p + mark, out->p + mark + sizeof(uint64_t), inner);
            out->len = mark + inner;
        } else if (fp_word(out, FP_OPEN) < 0 || fp_namespace(c, ns, out, alive, &declined) < 0 ||
                   fp_word(out, FP_CLOSE) < 0) {
            goto done;
        }
        rc = 1;
        goto done;
    }
    int got = fp_object_kind(c, v, &getter, &slots);
    if (got <= 0) {
        rc = got;
        goto done;
    }
    ns = fp_instance_dict(getter, v);
    if (ns == NULL && PyErr_Occurred()) { goto done; }
    if (ns != NULL && fp_namespace(c, ns, out, alive, &declined) < 0) { goto done; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(slots); i++) {
        PyObject *x = PyObject_CallOneArg(PyTuple_GET_ITEM(PyTuple_GET_ITEM(slots, i), 1), v);
        if (x == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) { goto done; }
            PyErr_Clear();
            if (fp_word(out, FP_NONE) < 0) { goto done; }
            continue;
        }
        int r = fp_id(out, x);
        if (r == 0) { r = fp_nested(c, x, out, &declined); }
        Py_DECREF(x);
        if (r < 0) { goto done; }
    }
    if (k == KIND_EXCEPTION) {
        /* its args live in a C field, not in its dict: ValueError('odd', 0)
           and ValueError('odd', 1) must not share a fingerprint */
        PyObject *whole = ((PyBaseExceptionObject *)v)->args;
        if (whole != NULL && PyTuple_CheckExact(whole)) {
            PyObject *shown = exception_args(v, 30);
            int r = shown == NULL ? -1 : fp_int(out, PyTuple_GET_SIZE(whole));
            for (Py_ssize_t i = 0; r == 0 && i < PyTuple_GET_SIZE(shown); i++) {
                PyObject *x = PyTuple_GET_ITEM(shown, i);
                r = fp_id(out, x);
                if (r == 0 && alive != NULL && fp_is_scalar(x)) { r = PyList_Append(alive, x); }
            }
            Py_XDECREF(shown);
            if (r < 0) { goto done; }
        }
    }
    rc = 1;
done:
    if (rc < 0 && declined) {
        PyErr_Clear();
        rc = 0;
    }
    Py_XDECREF(ns);
    return rc;
}

/* The packed fingerprint of ``v`` is ``fp`` (bytes): 1, or 0 (changed,
   or C cannot tell). */
static int packed_unchanged(PyObject *kinds, PyObject *classify, PyObject *v, PyObject *fp) {
    if (kinds == NULL || !PyDict_CheckExact(kinds)) { return 0; }
    Tree c = {0};
    c.kinds = kinds;
    c.classify = classify;
    TextBuf out = {NULL, 0, 0};
    int rc = fp_value(&c, v, &out, NULL);
    int same = rc == 1 && (Py_ssize_t)out.len == PyBytes_GET_SIZE(fp) &&
               (out.len == 0 || memcmp(out.p, PyBytes_AS_STRING(fp), out.len) == 0);
    if (rc < 0) { PyErr_Clear(); }
    PyMem_Free(out.p);
    return same;
}

/* fingerprint_tree(value, kinds, classify) -> (fingerprint, kept alive) or None.

   values.fingerprint and values.kept_alive in one pass for what
   render_tree renders: lists, tuples, dicts, sets, frozensets and their
   subclasses, instances shown field by field, exceptions, functions and
   methods.  A changed object is re-checked at every statement that may
   change it, and in Python the check cost a third of a rendering.  The
   fingerprint is packed (bytes, values.packed_fingerprint of Python's), ()
   where Python's is (); None for anything else, which Python then
   fingerprints.  A test compares both on random trees. */
static PyObject *fingerprint_tree(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fingerprint_tree() takes a value, a dict of kinds and classify");
        return NULL;
    }
    Tree c = {0};
    c.kinds = args[1];
    c.classify = args[2];
    if (fp_is_scalar(args[0])) { Py_RETURN_NONE; }
    TextBuf out = {NULL, 0, 0};
    PyObject *alive = PyList_New(0), *result = NULL;
    if (alive == NULL) { return NULL; }
    int rc = fp_value(&c, args[0], &out, alive);
    if (rc == 0) {
        result = Py_NewRef(Py_None);
    } else if (rc == 2 || (rc == 1 && out.len == 0)) {
        /* () as Python's, which the identity-only check of cached_vid reads */
        result = Py_BuildValue("(()())");
    } else if (rc == 1) {
        PyObject *fp = PyBytes_FromStringAndSize(out.p ? out.p : "", (Py_ssize_t)out.len);
        PyObject *kept = fp ? PyList_AsTuple(alive) : NULL;
        result = kept ? PyTuple_Pack(2, fp, kept) : NULL;
        Py_XDECREF(fp);
        Py_XDECREF(kept);
    }
    PyMem_Free(out.p);
    Py_DECREF(alive);
    return result;
}

#if ESCOPE_FRAME_VARS
/* frame_locals(frame) -> a new dict of the frame's bound locals, read as
   FastToLocals reads them but written nowhere: the Python callbacks' f_locals
   on 3.12 (see frame_var). */
static PyObject *frame_locals_py(PyObject *module, PyObject *frame) {
    if (!PyFrame_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "frame_locals() takes a frame");
        return NULL;
    }
    PyObject *items = frame_items((PyFrameObject *)frame);
    if (items == NULL) { return NULL; }
    PyObject *out = PyDict_New();
    for (Py_ssize_t i = 0; out != NULL && i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (PyDict_SetItem(out, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) { Py_CLEAR(out); }
    }
    Py_DECREF(items);
    return out;
}
#endif

static PyMethodDef module_methods[] = {
#if ESCOPE_FRAME_VARS
    {"frame_locals", frame_locals_py, METH_O,
     "A new dict of a frame's bound locals that leaves the frame's f_locals alone (Python 3.12)."},
#endif
    {"render_scalar_sequence", (PyCFunction)(void (*)(void))render_scalar_sequence, METH_FASTCALL,
     "Renderer.render of a list or tuple of scalars, or None."},
    {"render_tree", (PyCFunction)(void (*)(void))render_tree, METH_FASTCALL,
     "Renderer.render of nested builtin containers and plain objects, or None."},
    {"fingerprint_tree", (PyCFunction)(void (*)(void))fingerprint_tree, METH_FASTCALL,
     "(values.fingerprint, values.kept_alive) of what render_tree renders, or None."},
    {"forget_row", forget_row_py, METH_O, "Take a Collector.objs row out of the garbage collector's lists."},
    {"scalar_fingerprint", scalar_fingerprint, METH_O,
     "values.fingerprint of a list or tuple whose first 30 items are immutable scalars, or None."},
    {"json_int_column", (PyCFunction)(void (*)(void))json_int_column, METH_FASTCALL,
     "A chunk column of ints as JSON text, transformed (see schema.pack_chunk), or None."},
    {"json_text_column", (PyCFunction)(void (*)(void))json_text_column, METH_FASTCALL,
     "A column of str or None cells of a table's rows as JSON text, or None."},
    {"event_columns", (PyCFunction)(void (*)(void))event_columns, METH_FASTCALL,
     "The kind, act, line and time columns of sealed EventLogs as JSON text, or None."},
    {"untrack_segment", untrack_segment, METH_O,
     "Untrack a segment of events (a tuple of event tuples) and the event\n"
     "tuples in it that hold nothing the garbage collector must visit."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_escope.recorder._hotpath.Callbacks",
    .tp_basicsize = sizeof(Hot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-event sys.monitoring callbacks of one recording.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hot_init,
    .tp_traverse = (traverseproc)Hot_traverse,
    .tp_clear = (inquiry)Hot_clear,
    .tp_dealloc = (destructor)Hot_dealloc,
    .tp_methods = Hot_methods,
};

static struct PyModuleDef hotmodule = {
    PyModuleDef_HEAD_INIT, "_hotpath",
    "Compiled per-event callbacks for the sys.monitoring backend (optional).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__hotpath(void) {
    if (PyType_Ready(&HotType) < 0 || PyType_Ready(&EventLogType) < 0 || PyType_Ready(&FilmTablesType) < 0) {
        return NULL;
    }
    /* every interned name, tag and fault message, in one table */
    static const struct { PyObject **slot; const char *text; } interned[] = {
        {&s_active, "active"}, {&s_spill_at, "spill_at"}, {&s_is_coro, "is_coro"},
        {&s_method_self, "method_self"}, {&s_qualname, "__qualname__"}, {&s_slots, "__slots__"},
        {&s_dict, "__dict__"}, {&s_watch, "watch"},
        {&s_tag_A, "A"}, {&s_tag_F, "F"}, {&s_tag_R, "R"}, {&s_tag_r, "r"}, {&s_tag_s, "s"}, {&s_tag_b, "b"}, {&s_tag_v, "v"},
        {&msg_start, "recorder error at a call"}, {&msg_call, "recorder error at an external call"},
        {&msg_line, "recorder error at a line step"}, {&msg_resume, "recorder error at a resume"},
        {&msg_yield, "recorder error at a yield"}, {&msg_raise, "recorder error at an exception"},
        {&s_base, "base"}, {&s_segmented, "segmented"}, {&s_moving, "moving"}, {&s_step_count, "step_count"}, {&msg_return, "recorder error at a return"},
    };
    for (size_t i = 0; i < sizeof(interned) / sizeof(interned[0]); i++) {
        *interned[i].slot = PyUnicode_InternFromString(interned[i].text);
        if (*interned[i].slot == NULL) { return NULL; }
    }
    k_line = PyLong_FromLong(K_LINE);
    k_return = PyLong_FromLong(K_RETURN);
    k_yield = PyLong_FromLong(K_YIELD);
    k_resume = PyLong_FromLong(K_RESUME);
    zero = PyLong_FromLong(0);
    one = PyLong_FromLong(1);
    if (!k_line || !k_return || !k_yield || !k_resume || !zero || !one) { return NULL; }
#if PY_VERSION_HEX >= 0x030C0000
    line_cache_slot = PyUnstable_Eval_RequestCodeExtraIndex(free_line_cache);
#endif
    PyObject *m = PyModule_Create(&hotmodule);
    if (m == NULL) { return NULL; }
    if (PyModule_AddObjectRef(m, "Callbacks", (PyObject *)&HotType) < 0 ||
        PyModule_AddObjectRef(m, "EventLog", (PyObject *)&EventLogType) < 0 ||
        PyModule_AddObjectRef(m, "FilmTables", (PyObject *)&FilmTablesType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
