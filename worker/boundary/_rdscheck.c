/* The stream check of worker/boundary/rds_stream.py in C: the same walk, about 50 times faster.
 *
 * A real Robyn run holds about 250,000 items; the Python walk costs 0.3 s for them, more than
 * reading the run itself, while this one costs a few milliseconds. rds_stream.py stays the
 * readable reference: tests run both on the real samples, on every hostile file and on
 * mutated ones, and require the same verdict.
 *
 * Every read is bounds-checked against the buffer; recursion is bounded by max_depth, which is
 * clamped to HARD_MAX_DEPTH so no setting can make this walk itself overflow its stack.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define HARD_MAX_DEPTH 20000
#define NODE_BYTES 56

enum {
    SYMSXP = 1, LISTSXP = 2, CLOSXP = 3, ENVSXP = 4, PROMSXP = 5, LANGSXP = 6, SPECIALSXP = 7,
    BUILTINSXP = 8, CHARSXP = 9, LGLSXP = 10, INTSXP = 13, REALSXP = 14, CPLXSXP = 15,
    STRSXP = 16, DOTSXP = 17, VECSXP = 19, EXPRSXP = 20, BCODESXP = 21, EXTPTRSXP = 22,
    WEAKREFSXP = 23, RAWSXP = 24, S4SXP = 25,
    ALTREP_SXP = 238, ATTRLISTSXP = 239, ATTRLANGSXP = 240, BASEENV_SXP = 241, EMPTYENV_SXP = 242,
    BCREPREF = 243, BCREPDEF = 244, GENERICREFSXP = 245, CLASSREFSXP = 246, PERSISTSXP = 247,
    PACKAGESXP = 248, NAMESPACESXP = 249, BASENAMESPACE_SXP = 250, MISSINGARG_SXP = 251,
    UNBOUNDVALUE_SXP = 252, GLOBALENV_SXP = 253, NILVALUE_SXP = 254, REFSXP = 255
};
#define HAS_ATTR (1 << 9)
#define HAS_TAG (1 << 10)

typedef struct { int type; Py_ssize_t name; int name_len; } Ref;

typedef struct {
    const unsigned char *p;
    Py_ssize_t pos, end;
    long long max_depth, max_string, max_altrep;
    long long items, depth_seen, longest_string, longest_vector, memory;
    Ref *refs;
    Py_ssize_t nrefs, cap;
    const char *code;
    char msg[200];
    long long altrep_counts[10];
} W;

typedef struct { int type; long long length; Py_ssize_t name; int name_len; } Item;

static int fail(W *w, const char *code, const char *fmt, long long a, long long b) {
    if (!w->code) {
        w->code = code;
        PyOS_snprintf(w->msg, sizeof w->msg, fmt, a, b);
    }
    return -1;
}

static int rd_int(W *w, int *out) {
    if (w->end - w->pos < 4) return fail(w, "truncated", "serialization stream ends inside an item", 0, 0);
    const unsigned char *q = w->p + w->pos;
    *out = (int)(((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | (uint32_t)q[3]);
    w->pos += 4;
    return 0;
}

static int skip(W *w, long long size) {
    if (size < 0 || size > (long long)(w->end - w->pos))
        return fail(w, "truncated", "an item declares %lld bytes but only %lld follow", size, (long long)(w->end - w->pos));
    w->pos += (Py_ssize_t)size;
    return 0;
}

static int length(W *w, long long *n) {
    int v;
    if (rd_int(w, &v)) return -1;
    if (v == -1) {
        int upper, lower;
        if (rd_int(w, &upper) || rd_int(w, &lower)) return -1;
        if (upper < 0) return fail(w, "corrupt", "a vector has a negative length", 0, 0);
        *n = ((long long)upper << 32) + (long long)(uint32_t)lower;
    } else if (v < 0) {
        return fail(w, "corrupt", "a vector has a negative length (%lld)", v, 0);
    } else {
        *n = v;
    }
    if (*n > w->longest_vector) w->longest_vector = *n;
    return 0;
}

static int remember(W *w, int type, Py_ssize_t name, int name_len) {
    if (w->nrefs == w->cap) {
        Py_ssize_t cap = w->cap ? w->cap * 2 : 1024;
        Ref *grown = PyMem_RawRealloc(w->refs, (size_t)cap * sizeof(Ref));
        if (!grown) return fail(w, "memory", "out of memory", 0, 0);
        w->refs = grown;
        w->cap = cap;
    }
    w->refs[w->nrefs].type = type;
    w->refs[w->nrefs].name = name;
    w->refs[w->nrefs].name_len = name_len;
    w->nrefs++;
    return 0;
}

static int string_size(W *w, int n) {
    if (n > w->max_string) return fail(w, "too_large", "a string of %lld bytes, over the limit of %lld", n, w->max_string);
    if (n < -1) return fail(w, "corrupt", "a string has a negative length (%lld)", n, 0);
    if (n > w->longest_string) w->longest_string = n;
    return 0;
}

/* A CHARSXP that must stand here (a symbol's or namespace's name): its bytes' offset and size. */
static int charsxp(W *w, Py_ssize_t *start, int *size) {
    int flags, n;
    if (rd_int(w, &flags)) return -1;
    if ((flags & 0xFF) != CHARSXP || (flags & HAS_ATTR)) return fail(w, "corrupt", "a name is not a string", 0, 0);
    if (rd_int(w, &n) || string_size(w, n)) return -1;
    *start = w->pos;
    *size = n > 0 ? n : 0;
    return skip(w, *size);
}

static int strings(W *w, long long n) {
    if (n > (long long)(w->end - w->pos) / 8)
        return fail(w, "truncated", "a character vector declares %lld strings but only %lld bytes follow", n,
                    (long long)(w->end - w->pos));
    long long total = 0;
    for (long long i = 0; i < n; i++) {
        int flags, size;
        if (rd_int(w, &flags) || rd_int(w, &size)) return -1;
        if ((flags & 0xFF) != CHARSXP || (flags & HAS_ATTR))
            return fail(w, "corrupt", "a character vector holds an element that is not a string", 0, 0);
        if (size >= 0) {
            if (string_size(w, size) || skip(w, size)) return -1;
            total += size;
        } else if (size < -1) {
            return fail(w, "corrupt", "a string has a negative length (%lld)", size, 0);
        }
    }
    w->memory += NODE_BYTES + 8 * n + total + 16 * n;
    return 0;
}

static int item(W *w, long long depth, Item *out);
/* -- namespaces and packages: InStringVec ------------------------------------------------------ */
static int name_vector(W *w, Item *out) {
    int zero;
    long long n;
    if (rd_int(w, &zero)) return -1;
    if (zero != 0) return fail(w, "corrupt", "names in a persistent string vector", 0, 0);
    if (length(w, &n)) return -1;
    for (long long i = 0; i < n; i++) {
        Py_ssize_t start;
        int size;
        if (charsxp(w, &start, &size)) return -1;
        if (i == 0) {
            out->name = start;
            out->name_len = size;
        }
    }
    return 0;
}

/* -- ALTREP: class record, state, attributes (altclasses.c) ------------------------------------- */
static const char *ALLOWED[10] = {"compact_intseq", "compact_realseq", "deferred_string", "wrap_integer",
                                  "wrap_logical", "wrap_real", "wrap_complex", "wrap_raw", "wrap_string",
                                  "wrap_list"};
static const int ALLOWED_TYPE[10] = {INTSXP, REALSXP, STRSXP, INTSXP, LGLSXP, REALSXP, CPLXSXP, RAWSXP, STRSXP, VECSXP};
static const int ELEMENT_BYTES[10] = {4, 8, 8, 4, 4, 8, 16, 1, 8, 8};

static int expect(W *w, int type) {
    int flags;
    if (rd_int(w, &flags)) return -1;
    if ((flags & 0xFF) != type || (flags & (HAS_ATTR | HAS_TAG)))
        return fail(w, "corrupt", "malformed ALTREP record", 0, 0);
    return 0;
}

static int symbol(W *w, long long depth, Item *sym) {
    if (item(w, depth, sym)) return -1;
    if (sym->type != SYMSXP || sym->name < 0) return fail(w, "corrupt", "malformed ALTREP class record", 0, 0);
    return 0;
}

static int names_equal(W *w, Item *sym, const char *text) {
    size_t n = strlen(text);
    return (size_t)sym->name_len == n && memcmp(w->p + sym->name, text, n) == 0;
}

static int compact_sequence(W *w, int cls, long long *n) {
    int flags;
    long long len;
    double v[3];
    if (rd_int(w, &flags)) return -1;
    int type = flags & 0xFF;
    if ((flags & HAS_ATTR) || (type != REALSXP && type != INTSXP) || (cls == 1 && type != REALSXP))
        return fail(w, "corrupt", "malformed compact sequence state", 0, 0);
    if (length(w, &len)) return -1;
    if (len != 3) return fail(w, "corrupt", "malformed compact sequence state", 0, 0);
    for (int i = 0; i < 3; i++) {
        if (type == INTSXP) {
            int x;
            if (rd_int(w, &x)) return -1;
            v[i] = x;
        } else {
            int hi, lo;
            if (rd_int(w, &hi) || rd_int(w, &lo)) return -1;
            uint64_t bits = ((uint64_t)(uint32_t)hi << 32) | (uint32_t)lo;
            memcpy(&v[i], &bits, sizeof v[i]);
        }
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(v[i]) || v[i] != floor(v[i]) || fabs(v[i]) > 9007199254740992.0)
            return fail(w, "corrupt", "a compact sequence R cannot build", 0, 0);
    if (v[0] < 0 || (v[2] != 1 && v[2] != -1)) return fail(w, "corrupt", "a compact sequence R cannot build", 0, 0);
    double last = v[0] > 0 ? v[1] + (v[0] - 1) * v[2] : v[1];
    if (cls == 0 && (fmin(v[1], last) < -2147483647.0 || fmax(v[1], last) > 2147483647.0))
        return fail(w, "corrupt", "compact_intseq runs outside the integer range", 0, 0);
    *n = (long long)v[0];
    return 0;
}

static int wrapped_state(W *w, int cls, long long depth, long long *n) {
    Item x, info;
    if (expect(w, LISTSXP) || item(w, depth + 1, &x)) return -1;
    int ok = cls == 2 ? (x.type == INTSXP || x.type == REALSXP) : x.type == ALLOWED_TYPE[cls];
    if (!ok) return fail(w, "corrupt", "an ALTREP wrapper around an R object of type %lld", x.type, 0);
    if (item(w, depth + 1, &info)) return -1;
    if (info.type != INTSXP || info.length != (cls == 2 ? 1 : 2))
        return fail(w, "corrupt", "malformed ALTREP state", 0, 0);
    *n = x.length;
    return 0;
}

static int altrep(W *w, long long depth, Item *out) {
    Item name, package, attrs;
    int kind;
    long long one;
    if (expect(w, LISTSXP) || symbol(w, depth + 2, &name) || expect(w, LISTSXP) || symbol(w, depth + 3, &package) ||
        expect(w, LISTSXP) || expect(w, INTSXP) || length(w, &one))
        return -1;
    if (one != 1) return fail(w, "corrupt", "malformed ALTREP class record", 0, 0);
    if (rd_int(w, &kind) || expect(w, NILVALUE_SXP)) return -1;
    int cls = -1;
    if (names_equal(w, &package, "base"))
        for (int i = 0; i < 10; i++)
            if (names_equal(w, &name, ALLOWED[i])) cls = i;
    if (cls < 0) {
        if (!w->code) {
            w->code = "altrep_refused";
            PyOS_snprintf(w->msg, sizeof w->msg, "ALTREP class '%.*s' of package '%.*s' is refused",
                          name.name_len > 60 ? 60 : name.name_len, (const char *)w->p + name.name,
                          package.name_len > 60 ? 60 : package.name_len, (const char *)w->p + package.name);
        }
        return -1;
    }
    if (kind != ALLOWED_TYPE[cls]) return fail(w, "corrupt", "ALTREP class declared with vector type %lld", kind, 0);
    long long n;
    if (cls < 2 ? compact_sequence(w, cls, &n) : wrapped_state(w, cls, depth + 1, &n)) return -1;
    if (n > w->max_altrep)
        return fail(w, "altrep_too_long", "an ALTREP vector of %lld elements, over the limit of %lld", n, w->max_altrep);
    w->altrep_counts[cls]++;
    w->memory += NODE_BYTES + n * ELEMENT_BYTES[cls];
    if (item(w, depth + 1, &attrs)) return -1;
    out->type = kind;
    out->length = n;
    return 0;
}

/* -- bytecode: ReadBC, ReadBC1, ReadBCLang ------------------------------------------------------ */
static int rep_index(W *w, int reps) {
    int index;
    if (rd_int(w, &index)) return -1;
    if (index < 0 || index >= reps) return fail(w, "corrupt", "bytecode refers to shared expression %lld of %lld", index, reps);
    return 0;
}

static int language(W *w, int type, long long depth, int reps) {
    Item child;
    if (depth > w->max_depth) return fail(w, "too_deep", "objects nested deeper than %lld levels", w->max_depth, 0);
    if (type == BCREPREF) return rep_index(w, reps);
    if (type != BCREPDEF && type != LANGSXP && type != LISTSXP && type != ATTRLANGSXP && type != ATTRLISTSXP)
        return item(w, depth, &child);
    if (type == BCREPDEF) {
        if (rep_index(w, reps) || rd_int(w, &type)) return -1;
        if (type != LANGSXP && type != LISTSXP && type != ATTRLANGSXP && type != ATTRLISTSXP)
            return fail(w, "corrupt", "bytecode shared expression of type %lld", type, 0);
    }
    if ((type == ATTRLANGSXP || type == ATTRLISTSXP) && item(w, depth + 1, &child)) return -1;
    int car, cdr;
    if (item(w, depth + 1, &child) || rd_int(w, &car) || language(w, car, depth + 1, reps) || rd_int(w, &cdr) ||
        language(w, cdr, depth + 1, reps))
        return -1;
    w->memory += NODE_BYTES;
    return 0;
}

static int code(W *w, long long depth, int reps) {
    Item body;
    int count;
    if (depth > w->max_depth) return fail(w, "too_deep", "objects nested deeper than %lld levels", w->max_depth, 0);
    if (item(w, depth + 1, &body)) return -1;
    if (body.type != INTSXP || body.length < 1)
        return fail(w, "corrupt", "bytecode whose code is not an integer vector", 0, 0);
    if (rd_int(w, &count)) return -1;
    if (count < 0 || count > (w->end - w->pos) / 4) return fail(w, "corrupt", "bytecode with %lld constants", count, 0);
    for (int i = 0; i < count; i++) {
        int type;
        if (rd_int(w, &type)) return -1;
        if (type == BCODESXP) {
            if (code(w, depth + 1, reps)) return -1;
        } else if (language(w, type, depth + 1, reps)) {
            return -1;
        }
    }
    return 0;
}

static int bytecode(W *w, long long depth) {
    int reps;
    if (rd_int(w, &reps)) return -1;
    if (reps < 0 || reps > w->end - w->pos) return fail(w, "corrupt", "bytecode with %lld shared expressions", reps, 0);
    return code(w, depth + 1, reps);
}

static int vector_payload(W *w, int type, long long depth, long long *n) {
    long long size = 0;
    switch (type) {
    case LGLSXP: case INTSXP: size = 4; break;
    case REALSXP: size = 8; break;
    case CPLXSXP: size = 16; break;
    case RAWSXP: size = 1; break;
    }
    if (size) {
        if (length(w, n)) return -1;
        if (*n > (long long)(w->end - w->pos) / size)
            return fail(w, "truncated", "a vector declares %lld elements but only %lld bytes follow", *n,
                        (long long)(w->end - w->pos));
        w->pos += (Py_ssize_t)(*n * size);
        w->memory += NODE_BYTES + *n * size;
        return 0;
    }
    if (type == STRSXP) return length(w, n) || strings(w, *n) ? -1 : 0;
    if (type == CHARSXP) {
        int v;
        if (rd_int(w, &v) || string_size(w, v)) return -1;
        *n = v > 0 ? v : 0;
        w->memory += NODE_BYTES + *n;
        return skip(w, *n);
    }
    if (type == VECSXP || type == EXPRSXP) {
        if (length(w, n)) return -1;
        if (*n > (long long)(w->end - w->pos) / 4)
            return fail(w, "truncated", "a list declares %lld elements but only %lld bytes follow", *n,
                        (long long)(w->end - w->pos));
        Item child;
        for (long long i = 0; i < *n; i++)
            if (item(w, depth + 1, &child)) return -1;
        w->memory += NODE_BYTES + 8 * *n;
        return 0;
    }
    *n = 1;
    if (type == BCODESXP) return bytecode(w, depth);
    if (type == SPECIALSXP || type == BUILTINSXP) {
        int v;
        if (rd_int(w, &v) || string_size(w, v)) return -1;
        return skip(w, v > 0 ? v : 0);
    }
    if (type == S4SXP) return 0;
    return fail(w, "corrupt", "unknown item type %lld", type, 0);
}

static const char *forbidden(int type) {
    switch (type) {
    case EXTPTRSXP: return "external pointer";
    case WEAKREFSXP: return "weak reference";
    case PERSISTSXP: return "persistent reference";
    case CLASSREFSXP: return "class reference";
    case GENERICREFSXP: return "generic reference";
    }
    return NULL;
}

static int item(W *w, long long depth, Item *out) {
    int flags;
    if (depth > w->depth_seen) {
        if (depth > w->max_depth) return fail(w, "too_deep", "objects nested deeper than %lld levels", w->max_depth, 0);
        w->depth_seen = depth;
    }
    w->items++;
    if (rd_int(w, &flags)) return -1;
    int type = flags & 0xFF;
    out->type = type;
    out->length = 0;
    out->name = -1;
    out->name_len = 0;
    Item child;
    switch (type) {
    case NILVALUE_SXP: case GLOBALENV_SXP: case UNBOUNDVALUE_SXP: case MISSINGARG_SXP:
    case BASENAMESPACE_SXP: case EMPTYENV_SXP: case BASEENV_SXP:
        return 0;
    case REFSXP: {
        int index = flags >> 8;
        if (index == 0 && rd_int(w, &index)) return -1;
        if (index < 1 || index > w->nrefs) return fail(w, "corrupt", "reference %lld to an object not read yet", index, 0);
        Ref *r = &w->refs[index - 1];
        out->type = r->type;
        out->name = r->name;
        out->name_len = r->name_len;
        return 0;
    }
    case LISTSXP: case LANGSXP: case CLOSXP: case PROMSXP: case DOTSXP:
        if ((flags & HAS_ATTR) && item(w, depth + 1, &child)) return -1;
        if ((flags & HAS_TAG) && item(w, depth + 1, &child)) return -1;
        if (item(w, depth + 1, &child) || item(w, depth + 1, &child)) return -1;
        w->memory += NODE_BYTES;
        out->length = 1;
        return 0;
    case SYMSXP:
        if (charsxp(w, &out->name, &out->name_len)) return -1;
        out->length = 1;
        return remember(w, SYMSXP, out->name, out->name_len);
    case PACKAGESXP: case NAMESPACESXP:
        if (name_vector(w, out)) return -1;
        return remember(w, type, out->name, out->name_len);
    case ENVSXP: {
        int locked;
        if (rd_int(w, &locked) || remember(w, ENVSXP, -1, 0)) return -1;
        for (int i = 0; i < 4; i++)
            if (item(w, depth + 1, &child)) return -1;
        w->memory += NODE_BYTES;
        return 0;
    }
    case ALTREP_SXP:
        return altrep(w, depth, out);
    }
    const char *what = forbidden(type);
    if (what) return fail(w, "forbidden", what, 0, 0);
    if (vector_payload(w, type, depth, &out->length)) return -1;
    if ((flags & HAS_ATTR) && item(w, depth + 1, &child)) return -1;
    return 0;
}

static int header(W *w) {
    int version, writer, reader;
    if (w->end < 2 || w->p[0] != 'X' || w->p[1] != '\n')
        return fail(w, "corrupt", "only XDR serialization (saveRDS's default) is read, not ASCII or native", 0, 0);
    w->pos = 2;
    if (rd_int(w, &version) || rd_int(w, &writer) || rd_int(w, &reader)) return -1;
    if (version == 3) {
        int size;
        if (rd_int(w, &size)) return -1;
        if (size < 0 || size > 63) return fail(w, "corrupt", "native encoding name of %lld bytes", size, 0);
        return skip(w, size);
    }
    if (version != 2) return fail(w, "corrupt", "serialization version %lld (2 and 3 are read)", version, 0);
    return 0;
}

static PyObject *report(W *w) {
    PyObject *namespaces = PySet_New(NULL), *altrep = PyDict_New(), *result = NULL;
    if (!namespaces || !altrep) goto done;
    for (Py_ssize_t i = 0; i < w->nrefs; i++) {
        if (w->refs[i].type != NAMESPACESXP || w->refs[i].name < 0) continue;
        PyObject *name = PyUnicode_DecodeLatin1((const char *)w->p + w->refs[i].name, w->refs[i].name_len, NULL);
        if (!name || PySet_Add(namespaces, name) < 0) {
            Py_XDECREF(name);
            goto done;
        }
        Py_DECREF(name);
    }
    for (int i = 0; i < 10; i++) {
        if (!w->altrep_counts[i]) continue;
        PyObject *count = PyLong_FromLongLong(w->altrep_counts[i]);
        if (!count || PyDict_SetItemString(altrep, ALLOWED[i], count) < 0) {
            Py_XDECREF(count);
            goto done;
        }
        Py_DECREF(count);
    }
    result = Py_BuildValue("(sLLLLLOO)", "ok", w->items, w->depth_seen, w->longest_string, w->longest_vector,
                           w->memory, namespaces, altrep);
done:
    Py_XDECREF(namespaces);
    Py_XDECREF(altrep);
    return result;
}

static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long max_depth, max_string, max_altrep;
    if (!PyArg_ParseTuple(args, "y*LLL", &view, &max_depth, &max_string, &max_altrep)) return NULL;
    W w;
    memset(&w, 0, sizeof w);
    w.p = view.buf;
    w.end = view.len;
    w.max_depth = max_depth < HARD_MAX_DEPTH ? max_depth : HARD_MAX_DEPTH;
    w.max_string = max_string;
    w.max_altrep = max_altrep;
    Item root;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = header(&w) || item(&w, 1, &root);
    Py_END_ALLOW_THREADS
    if (!rc && w.pos != w.end)
        fail(&w, "corrupt", "%lld bytes after the end of the serialized object", (long long)(w.end - w.pos), 0);
    PyObject *result;
    if (w.code && strcmp(w.code, "memory") == 0) result = PyErr_NoMemory();
    else if (w.code) {
        /* The message may quote bytes of the stream (an ALTREP class name): never fail on them. */
        PyObject *text = PyUnicode_DecodeUTF8(w.msg, (Py_ssize_t)strlen(w.msg), "replace");
        result = text ? Py_BuildValue("(sN)", w.code, text) : NULL;
    }
    else result = report(&w);
    PyMem_RawFree(w.refs);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS,
     "check(buffer, max_depth, max_string_bytes, max_altrep_length) -> ('ok', items, depth, longest string, "
     "longest vector, memory bytes, namespaces, altrep counts) or (error code, message)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rdscheck", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rdscheck(void) { return PyModule_Create(&module); }
