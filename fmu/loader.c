/*
 * co2twin FMU loader: becomes binaries/linux64/<modelIdentifier>.so (built by fmu/build.py).
 *
 * PythonFMU's library (kept beside this one as <modelIdentifier>_pythonfmu.so) uses the
 * CPython API but does not link libpython, so a C host that dlopens it fails with
 * "undefined symbol: _Py_NoneStruct" (PythonFMU issue 202). This loader, on the first
 * fmi2Instantiate:
 *
 * 1. finds Python: the process's own if it already runs one (FMPy, libcosimpy, ...), else a
 *    shared libpython of the minor version the FMU was built for, tried in this order:
 *    $CO2TWIN_LIBPYTHON (alone, when set), the path recorded at build time, the soname
 *    (libpython3.X.so.1.0 through the dynamic linker's search path), then the usual system
 *    folders. It is loaded with RTLD_GLOBAL (NumPy's extension modules need its symbols).
 * 2. starts that Python isolated: no site-packages, no user site, PYTHON* variables
 *    ignored, no bytecode written, no signal handlers; its home (standard library) is
 *    $CO2TWIN_PYTHONHOME, else the recorded one for the recorded libpython, else the
 *    prefix whose lib/python3.X/os.py sits above the libpython found. So its path holds
 *    only the standard library; the FMU's entry module adds the FMU's own resources and
 *    their site-packages bundle. Python is never finalised (NumPy cannot start twice).
 * 3. loads the PythonFMU library and forwards every fmi2 function to it.
 *
 * Between host and PythonFMU each instance is wrapped (the fmi2Component the host sees is
 * an Instance below), which makes the statuses honest:
 *
 * - PythonFMU only ever returns OK or, when Python raised, fatal. The slave therefore
 *   reports a refused value or a failed step by logging it with that status (fmu/slave.py);
 *   the loader hands PythonFMU its own logger, notes the most severe status logged during
 *   each call and returns the more severe of that and PythonFMU's status. The category
 *   always matches the status (logStatusWarning, logStatusError, logStatusFatal; logEvents
 *   for what the FMU reports at fmi2OK).
 * - Messages with a status other than fmi2OK always reach the host (they explain a status
 *   it got); fmi2OK messages follow fmi2SetDebugLogging (on/off and categories).
 * - fmi2SetReal refuses non-finite values (fmi2Error, nothing of the call set).
 * - doStep: the slave returns False only when the simulation cannot continue; the loader
 *   then returns fmi2Error and fmi2GetBooleanStatus(fmi2Terminated) says true until
 *   fmi2Reset or fmi2SetFMUstate. fmi2LastSuccessfulTime is the end of the last step
 *   that succeeded.
 * - After fmi2Fatal (a Python exception) PythonFMU has released the instance's Python
 *   objects; the loader refuses every later call on it and never passes it back to
 *   PythonFMU (whose free would release them again), so the host cannot crash on it.
 * - fmi2DeSerializeFMUstate refuses bytes that are not a state of this FMU: the header line
 *   "<magic> <guid> <payload length> <payload CRC-32>" must match (fmu/slave.py writes it).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wchar.h>

#ifndef CO2TWIN_PY_VERSION
#define CO2TWIN_PY_VERSION "3.11"
#endif
#ifndef CO2TWIN_LIBPYTHON
#define CO2TWIN_LIBPYTHON ""
#endif
#ifndef CO2TWIN_PYTHONHOME
#define CO2TWIN_PYTHONHOME ""
#endif
#ifndef CO2TWIN_PYTHONFMU_LIB
#define CO2TWIN_PYTHONFMU_LIB "Co2Twin_pythonfmu.so"
#endif
#ifndef CO2TWIN_GUID
#define CO2TWIN_GUID ""
#endif
/* first word of a serialised FMU state (fmu/slave.py writes it) */
#ifndef CO2TWIN_STATE_MAGIC
#define CO2TWIN_STATE_MAGIC "co2twin-fmu-state/1"
#endif

#define EXPORT __attribute__((visibility("default")))

typedef void *fmi2Component;
typedef void *fmi2ComponentEnvironment;
typedef void *fmi2FMUstate;
typedef unsigned int fmi2ValueReference;
typedef double fmi2Real;
typedef int fmi2Integer;
typedef int fmi2Boolean;
typedef char fmi2Char;
typedef const fmi2Char *fmi2String;
typedef char fmi2Byte;
typedef int fmi2Status;
typedef int fmi2Type;
typedef int fmi2StatusKind;
enum { fmi2OK, fmi2Warning, fmi2Discard, fmi2Error, fmi2Fatal, fmi2Pending };
enum { fmi2ModelExchange, fmi2CoSimulation };
enum { fmi2DoStepStatus, fmi2PendingStatus, fmi2LastSuccessfulTime, fmi2Terminated };

typedef void (*fmi2Logger)(fmi2ComponentEnvironment, fmi2String, fmi2Status, fmi2String, fmi2String, ...);
typedef struct {
    fmi2Logger logger;
    void *(*allocateMemory)(size_t, size_t);
    void (*freeMemory)(void *);
    void (*stepFinished)(fmi2ComponentEnvironment, fmi2Status);
    fmi2ComponentEnvironment componentEnvironment;
} fmi2CallbackFunctions;

/* -- loading Python and PythonFMU ----------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *target = NULL;             /* PythonFMU's library */
static char load_error[16384] = "";
static char python_note[1024] = "";     /* which Python runs the FMU, for the first log */

static int is_file(const char *path) {
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "3.11.7 (main, ...)" -> does it start with CO2TWIN_PY_VERSION "."? */
static int version_matches(const char *version) {
    size_t n = strlen(CO2TWIN_PY_VERSION);
    return version && strncmp(version, CO2TWIN_PY_VERSION, n) == 0 && version[n] == '.';
}

static const char *python_version(void *handle) {
    const char *(*get)(void) = (const char *(*)(void))dlsym(handle, "Py_GetVersion");
    return get ? get() : NULL;
}

/* The prefix whose lib/python3.X/os.py holds the standard library of libpython at `lib`. */
static int find_home(const char *lib, char *home, size_t size) {
    char dir[4096], probe[4200];
    snprintf(dir, sizeof dir, "%s", lib);
    for (int up = 0; up < 3; up++) {  /* <prefix>/lib/libpython..., <prefix>/lib/<triplet>/... */
        char *slash = strrchr(dir, '/');
        if (!slash) break;
        *slash = '\0';
        if (!*dir) break;  /* the root: /usr below is the usual home of /lib/<triplet>/libpython */
        snprintf(probe, sizeof probe, "%s/lib/python%s/os.py", dir, CO2TWIN_PY_VERSION);
        if (is_file(probe)) { snprintf(home, size, "%s", dir); return 1; }
    }
    static const char *system_prefixes[] = {"/usr", "/usr/local"};
    for (size_t i = 0; i < sizeof system_prefixes / sizeof *system_prefixes; i++) {
        snprintf(probe, sizeof probe, "%s/lib/python%s/os.py", system_prefixes[i], CO2TWIN_PY_VERSION);
        if (is_file(probe)) { snprintf(home, size, "%s", system_prefixes[i]); return 1; }
    }
    return 0;
}

static void set_flag(void *py, const char *name) {
    int *flag = (int *)dlsym(py, name);
    if (flag) *flag = 1;
}

/* Load a shared libpython of the right version; 1 on success (path and handle set). */
static int open_libpython(void **handle, char *path, size_t size) {
    char tried[2048] = "";
    const char *override = getenv("CO2TWIN_LIBPYTHON");
    char soname[64], soname_short[64];
    snprintf(soname, sizeof soname, "libpython%s.so.1.0", CO2TWIN_PY_VERSION);
    snprintf(soname_short, sizeof soname_short, "libpython%s.so", CO2TWIN_PY_VERSION);
    char system_paths[4][128];
    static const char *system_dirs[] = {"/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"};
    for (int i = 0; i < 4; i++) snprintf(system_paths[i], sizeof system_paths[i], "%s/%s", system_dirs[i], soname);
    const char *candidates[8];
    int n = 0;
    if (override && *override) {
        candidates[n++] = override;
    } else {
        if (*CO2TWIN_LIBPYTHON) candidates[n++] = CO2TWIN_LIBPYTHON;
        candidates[n++] = soname;
        candidates[n++] = soname_short;
        for (int i = 0; i < 4; i++) candidates[n++] = system_paths[i];
    }
    for (int i = 0; i < n; i++) {
        void *h = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        size_t used = strlen(tried);
        if (!h) {
            snprintf(tried + used, sizeof tried - used, "%s%s (%s)", used ? "; " : "", candidates[i],
                     strchr(candidates[i], '/') ? "cannot load" : "not found");
            continue;
        }
        const char *version = python_version(h);
        if (!version_matches(version)) {
            snprintf(tried + used, sizeof tried - used, "%s%s (Python %.10s)", used ? "; " : "",
                     candidates[i], version ? version : "?");
            continue;  /* left loaded: unloading a libpython is not safe */
        }
        Dl_info info;
        void *sym = dlsym(h, "Py_GetVersion");
        if (sym && dladdr(sym, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
            snprintf(path, size, "%s", info.dli_fname);
        else
            snprintf(path, size, "%s", candidates[i]);
        *handle = h;
        return 1;
    }
    snprintf(load_error, sizeof load_error,
             "co2twin loader: no shared libpython of CPython %s found; tried %s. The FMU needs a "
             "CPython %s shared library with its standard library (Debian/Ubuntu: libpython%s); "
             "set CO2TWIN_LIBPYTHON to its path",
             CO2TWIN_PY_VERSION, tried, CO2TWIN_PY_VERSION, CO2TWIN_PY_VERSION);
    return 0;
}

static int start_python(void) {
    void *py = NULL;
    char lib[4096] = "", home[4096] = "";
    if (!open_libpython(&py, lib, sizeof lib)) return 0;
    const char *home_override = getenv("CO2TWIN_PYTHONHOME");
    if (home_override && *home_override) {
        snprintf(home, sizeof home, "%s", home_override);
    } else {
        char recorded[4096] = "";
        if (*CO2TWIN_LIBPYTHON && realpath(CO2TWIN_LIBPYTHON, recorded) && *CO2TWIN_PYTHONHOME) {
            char loaded[4096] = "";
            if (realpath(lib, loaded) && strcmp(recorded, loaded) == 0)
                snprintf(home, sizeof home, "%s", CO2TWIN_PYTHONHOME);
        }
        if (!*home && !find_home(lib, home, sizeof home)) {
            snprintf(load_error, sizeof load_error,
                     "co2twin loader: cannot find the standard library of %s (no lib/python%s/os.py "
                     "above it); set CO2TWIN_PYTHONHOME to its prefix", lib, CO2TWIN_PY_VERSION);
            return 0;
        }
    }
    char landmark[4200];
    snprintf(landmark, sizeof landmark, "%s/lib/python%s/os.py", home, CO2TWIN_PY_VERSION);
    if (!is_file(landmark)) {  /* Python would abort the host process without its standard library */
        snprintf(load_error, sizeof load_error,
                 "co2twin loader: %s not found: %s is not the home of a CPython %s (set CO2TWIN_PYTHONHOME)",
                 landmark, home, CO2TWIN_PY_VERSION);
        return 0;
    }
    wchar_t *(*decode)(const char *, size_t *) = (wchar_t *(*)(const char *, size_t *))dlsym(py, "Py_DecodeLocale");
    void (*set_home)(const wchar_t *) = (void (*)(const wchar_t *))dlsym(py, "Py_SetPythonHome");
    void (*initialize)(int) = (void (*)(int))dlsym(py, "Py_InitializeEx");
    void *(*save_thread)(void) = (void *(*)(void))dlsym(py, "PyEval_SaveThread");
    if (!decode || !set_home || !initialize || !save_thread) {
        snprintf(load_error, sizeof load_error, "co2twin loader: %s lacks the CPython embedding API", lib);
        return 0;
    }
    static wchar_t *whome;  /* Python keeps the pointer */
    whome = decode(home, NULL);
    set_flag(py, "Py_IsolatedFlag");
    set_flag(py, "Py_NoSiteFlag");
    set_flag(py, "Py_IgnoreEnvironmentFlag");
    set_flag(py, "Py_NoUserSiteDirectory");
    set_flag(py, "Py_DontWriteBytecodeFlag");
    if (whome) set_home(whome);
    initialize(0);          /* 0: leave the host's signal handlers alone */
    save_thread();          /* release the GIL: PythonFMU takes it per call, from any thread */
    const char *version = python_version(py);
    snprintf(python_note, sizeof python_note, "Python %.*s started by the loader from %s (home %s), "
             "standard library only", (int)strcspn(version, " "), version, lib, home);
    return 1;
}

static void load(void) {
    int (*initialized)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (initialized && initialized()) {
        const char *version = python_version(RTLD_DEFAULT);
        if (!version_matches(version)) {
            snprintf(load_error, sizeof load_error,
                     "co2twin loader: this process runs Python %.10s; the FMU's packages are built "
                     "for CPython %s", version ? version : "?", CO2TWIN_PY_VERSION);
            return;
        }
        snprintf(python_note, sizeof python_note, "Python %.*s of the host process",
                 (int)strcspn(version, " "), version);
    } else if (!start_python()) {
        return;
    }
    Dl_info self;
    char path[4096];
    if (!dladdr((void *)&load, &self) || !self.dli_fname) {
        snprintf(load_error, sizeof load_error, "co2twin loader: cannot locate itself");
        return;
    }
    snprintf(path, sizeof path, "%s", self.dli_fname);
    char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    snprintf(path + dir, sizeof path - dir, "%s", CO2TWIN_PYTHONFMU_LIB);
    target = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!target)
        snprintf(load_error, sizeof load_error, "co2twin loader: cannot load %s: %s", path, dlerror());
}

static void *sym(const char *name) {
    pthread_once(&once, load);
    if (!target) return NULL;
    return dlsym(target, name);
}

/* -- instances -------------------------------------------------------------------------- */

typedef struct {
    fmi2Component inner;            /* PythonFMU's component */
    fmi2CallbackFunctions host;     /* the host's callbacks */
    fmi2CallbackFunctions relay;    /* ours, handed to PythonFMU (stays valid: inside this struct) */
    char name[256];
    int logging;                    /* fmi2SetDebugLogging: on/off */
    size_t n_categories;            /* 0: every category */
    char **categories;
    fmi2Status worst;               /* most severe status logged during the current call */
    int terminated;                 /* the simulation cannot continue (fmi2Terminated) */
    int fatal;                      /* PythonFMU has dropped the instance's Python objects */
    double last_successful_time;
} Instance;

static const char *category_of(fmi2Status status) {
    switch (status) {
    case fmi2OK: return "logEvents";
    case fmi2Warning: case fmi2Discard: return "logStatusWarning";
    case fmi2Error: return "logStatusError";
    default: return "logStatusFatal";
    }
}

static int enabled(const Instance *in, const char *category) {
    if (!in->logging) return 0;
    if (in->n_categories == 0) return 1;
    for (size_t i = 0; i < in->n_categories; i++)
        if (strcmp(in->categories[i], category) == 0) return 1;
    return 0;
}

/* Pass `text` to the host's logger as a format without arguments ('%' doubled). */
static void deliver(const Instance *in, const char *name, fmi2Status status, const char *category,
                    const char *text) {
    if (!in->host.logger) return;
    if (status == fmi2OK && !enabled(in, category)) return;
    size_t n = strlen(text), extra = 0;
    for (size_t i = 0; i < n; i++) extra += text[i] == '%';
    char *escaped = malloc(n + extra + 1);
    if (!escaped) return;
    char *o = escaped;
    for (size_t i = 0; i < n; i++) {
        *o++ = text[i];
        if (text[i] == '%') *o++ = '%';
    }
    *o = '\0';
    in->host.logger(in->host.componentEnvironment, name, status, category, escaped);
    free(escaped);
}

/* The loader's own messages. */
static void say(Instance *in, fmi2Status status, const char *fmt, ...) {
    char text[4096];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (status > in->worst && status <= fmi2Fatal) in->worst = status;
    deliver(in, in->name, status, category_of(status), text);
}

/* PythonFMU's logger calls: note the status, keep the category honest, forward. PythonFMU
 * passes the finished message as the format, so the arguments are never read. */
static void relay(fmi2ComponentEnvironment env, fmi2String name, fmi2Status status, fmi2String category,
                  fmi2String message, ...) {
    Instance *in = (Instance *)env;
    if (!in) return;
    if (status > in->worst && status <= fmi2Fatal) in->worst = status;
    const char *cat = category && *category ? category : category_of(status);
    if (status != fmi2OK) cat = category_of(status);  /* a warning is logStatusWarning, ... */
    deliver(in, name && *name ? name : in->name, status, cat, message ? message : "");
}

/* The status of a forwarded call: the more severe of PythonFMU's and what was logged. */
static fmi2Status finish(Instance *in, fmi2Status status) {
    if (status < fmi2OK || status > fmi2Fatal) status = fmi2Fatal;
    if (in->worst > status) status = in->worst;
    if (status == fmi2Fatal) {
        in->fatal = 1;
        in->terminated = 1;
    }
    return status;
}

/* Every call on an instance starts here: NULL when the call must not reach PythonFMU. */
static Instance *begin(fmi2Component c, const char *function) {
    Instance *in = (Instance *)c;
    if (!in) return NULL;
    in->worst = fmi2OK;
    if (in->fatal) {
        say(in, fmi2Error, "%s: refused, the instance failed fatally before; free it", function);
        return NULL;
    }
    return in;
}

#define FORWARD(NAME, PARAMS, ARGS)                                       \
    EXPORT fmi2Status NAME PARAMS {                                       \
        static fmi2Status(*f) PARAMS = NULL;                              \
        Instance *in = begin(c, #NAME);                                   \
        if (!in) return fmi2Error;                                        \
        if (!f) f = (fmi2Status(*) PARAMS)sym(#NAME);                     \
        if (!f) { say(in, fmi2Error, "%s missing from %s", #NAME, CO2TWIN_PYTHONFMU_LIB); return fmi2Error; } \
        return finish(in, f ARGS);                                        \
    }

EXPORT const char *fmi2GetTypesPlatform(void) { return "default"; }
EXPORT const char *fmi2GetVersion(void) { return "2.0"; }

/* "file:///a%20b/resources/" -> "/a b/resources" (file:/, file://localhost/ too) */
static int resource_path(const char *uri, char *out, size_t size) {
    if (!uri) return 0;
    const char *p = uri;
    if (strncmp(p, "file://localhost/", 17) == 0) p += 16;
    else if (strncmp(p, "file:///", 8) == 0) p += 7;
    else if (strncmp(p, "file:/", 6) == 0) p += 5;
    else if (strncmp(p, "file:", 5) == 0) return 0;
    while (p[0] == '/' && p[1] == '/') p++;  /* "file:////tmp/x" (Ecos) is /tmp/x */
    size_t o = 0;
    for (; *p && o + 1 < size; p++) {
        if (p[0] == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0') { out[o++] = (char)v; p += 2; continue; }
        }
        out[o++] = *p;
    }
    while (o > 1 && out[o - 1] == '/') o--;
    out[o] = '\0';
    return o > 0;
}

EXPORT fmi2Component fmi2Instantiate(fmi2String name, fmi2Type type, fmi2String guid, fmi2String resources,
                                     const fmi2CallbackFunctions *cb, fmi2Boolean visible,
                                     fmi2Boolean logging) {
    typedef fmi2Component (*F)(fmi2String, fmi2Type, fmi2String, fmi2String,
                               const fmi2CallbackFunctions *, fmi2Boolean, fmi2Boolean);
    Instance *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    if (cb) in->host = *cb;
    snprintf(in->name, sizeof in->name, "%s", name ? name : "");
    in->logging = logging != 0;
    in->last_successful_time = NAN;
    in->relay = in->host;
    in->relay.logger = relay;
    in->relay.stepFinished = NULL;
    in->relay.componentEnvironment = in;
    char path[4096];
    if (type != fmi2CoSimulation) {
        say(in, fmi2Error, "fmi2Instantiate: this FMU is for co-simulation only (fmuType %d)", type);
    } else if (*CO2TWIN_GUID && (!guid || strcmp(guid, CO2TWIN_GUID) != 0)) {
        say(in, fmi2Error, "fmi2Instantiate: GUID %s is not this FMU's (%s)", guid ? guid : "(null)",
            CO2TWIN_GUID);
    } else if (!resource_path(resources, path, sizeof path)) {
        say(in, fmi2Error, "fmi2Instantiate: fmuResourceLocation %s is not a file URI",
            resources ? resources : "(null)");
    } else {
        F f = (F)sym("fmi2Instantiate");
        if (!f) {
            say(in, fmi2Error, "%s", load_error);
        } else {
            say(in, fmi2OK, "fmi2Instantiate: %s; resources %s", python_note, path);
            in->worst = fmi2OK;
            in->inner = f(name, type, guid, path, &in->relay, visible, 1 /* all messages to relay() */);
        }
    }
    if (!in->inner) {
        if (in->worst < fmi2Error) say(in, fmi2Error, "fmi2Instantiate failed");
        free(in);
        return NULL;
    }
    return in;
}

EXPORT void fmi2FreeInstance(fmi2Component c) {
    Instance *in = (Instance *)c;
    if (!in) return;
    static void (*f)(fmi2Component) = NULL;
    if (!f) f = (void (*)(fmi2Component))sym("fmi2FreeInstance");
    if (f && !in->fatal) f(in->inner);
    for (size_t i = 0; i < in->n_categories; i++) free(in->categories[i]);
    free(in->categories);
    free(in);
}

EXPORT fmi2Status fmi2SetDebugLogging(fmi2Component c, fmi2Boolean on, size_t n, const fmi2String cats[]) {
    Instance *in = (Instance *)c;
    if (!in) return fmi2Error;
    in->worst = fmi2OK;
    for (size_t i = 0; i < in->n_categories; i++) free(in->categories[i]);
    free(in->categories);
    in->categories = NULL;
    in->n_categories = 0;
    in->logging = on != 0;
    if (on && n > 0 && cats) {
        in->categories = calloc(n, sizeof *in->categories);
        if (!in->categories) return fmi2Error;
        static const char *known[] = {"logEvents", "logStatusWarning", "logStatusError", "logStatusFatal"};
        for (size_t i = 0; i < n; i++) {
            int ok = 0;
            for (size_t k = 0; k < sizeof known / sizeof *known; k++) ok |= cats[i] && strcmp(cats[i], known[k]) == 0;
            if (!ok) say(in, fmi2Warning, "fmi2SetDebugLogging: unknown log category %s; known: logEvents, "
                         "logStatusWarning, logStatusError, logStatusFatal", cats[i] ? cats[i] : "(null)");
            in->categories[in->n_categories++] = strdup(cats[i] ? cats[i] : "");
        }
    }
    return in->worst;
}

EXPORT fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Real v[]) {
    static fmi2Status (*f)(fmi2Component, const fmi2ValueReference[], size_t, const fmi2Real[]) = NULL;
    Instance *in = begin(c, "fmi2SetReal");
    if (!in) return fmi2Error;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            say(in, fmi2Error, "fmi2SetReal: value reference %u: expected a finite value, found %g; "
                "no value of this call was set", vr[i], v[i]);
            return fmi2Error;
        }
    }
    if (!f) f = (fmi2Status(*)(fmi2Component, const fmi2ValueReference[], size_t, const fmi2Real[]))
                sym("fmi2SetReal");
    if (!f) return fmi2Error;
    return finish(in, f(in->inner, vr, n, v));
}

EXPORT fmi2Status fmi2DoStep(fmi2Component c, fmi2Real t, fmi2Real h, fmi2Boolean no_prior) {
    static fmi2Status (*f)(fmi2Component, fmi2Real, fmi2Real, fmi2Boolean) = NULL;
    Instance *in = begin(c, "fmi2DoStep");
    if (!in) return fmi2Error;
    if (!f) f = (fmi2Status(*)(fmi2Component, fmi2Real, fmi2Real, fmi2Boolean))sym("fmi2DoStep");
    if (!f) return fmi2Error;
    fmi2Status inner = f(in->inner, t, h, no_prior);
    fmi2Status status = finish(in, inner);
    if (inner == fmi2Discard) {  /* the slave's do_step returned False: it cannot continue */
        in->terminated = 1;
        if (status < fmi2Error) status = fmi2Error;
    }
    if (status <= fmi2Warning) in->last_successful_time = t + h;
    return status;
}

EXPORT fmi2Status fmi2Reset(fmi2Component c) {
    static fmi2Status (*f)(fmi2Component) = NULL;
    Instance *in = begin(c, "fmi2Reset");
    if (!in) return fmi2Error;
    if (!f) f = (fmi2Status(*)(fmi2Component))sym("fmi2Reset");
    if (!f) return fmi2Error;
    fmi2Status status = finish(in, f(in->inner));
    if (status <= fmi2Warning) {
        in->terminated = 0;
        in->last_successful_time = NAN;
    }
    return status;
}

EXPORT fmi2Status fmi2SetFMUstate(fmi2Component c, fmi2FMUstate s) {
    static fmi2Status (*f)(fmi2Component, fmi2FMUstate) = NULL;
    Instance *in = begin(c, "fmi2SetFMUstate");
    if (!in) return fmi2Error;
    if (!f) f = (fmi2Status(*)(fmi2Component, fmi2FMUstate))sym("fmi2SetFMUstate");
    if (!f) return fmi2Error;
    fmi2Status status = finish(in, f(in->inner, s));
    if (status <= fmi2Warning) in->terminated = 0;  /* the slave never hands out a broken state */
    return status;
}

EXPORT fmi2Status fmi2SerializedFMUstateSize(fmi2Component c, fmi2FMUstate s, size_t *size) {
    static fmi2Status (*f)(fmi2Component, fmi2FMUstate, size_t *) = NULL;
    Instance *in = begin(c, "fmi2SerializedFMUstateSize");
    if (!in) return fmi2Error;
    if (!f) f = (fmi2Status(*)(fmi2Component, fmi2FMUstate, size_t *))sym("fmi2SerializedFMUstateSize");
    if (!f) return fmi2Error;
    fmi2Status status = finish(in, f(in->inner, s, size));
    if (status <= fmi2Warning && *size == 0) {
        say(in, fmi2Error, "fmi2SerializedFMUstateSize: the FMU state could not be serialised "
            "(is it a state of this instance?)");
        return fmi2Error;
    }
    return status;
}

static unsigned long crc32_of(const unsigned char *data, size_t n) {
    unsigned long crc = 0xFFFFFFFFul;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320ul & (0ul - (crc & 1ul)));
    }
    return crc ^ 0xFFFFFFFFul;
}

/* Why `bytes` is not a state of this FMU ("" if it is): "<magic> <guid> <length> <crc32>\n" */
static void state_problem(const fmi2Byte *bytes, size_t size, char *why, size_t why_size) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s %s ", CO2TWIN_STATE_MAGIC, CO2TWIN_GUID);
    size_t n = strlen(prefix);
    const char *newline = bytes ? memchr(bytes, '\n', size < 512 ? size : 512) : NULL;
    unsigned long length = 0, crc = 0;
    char tail[128] = "";
    if (!bytes || size < n || memcmp(bytes, prefix, n) != 0 || !newline) {
        char found[64] = "";
        size_t shown = size < sizeof found - 1 ? size : sizeof found - 1;
        for (size_t i = 0; bytes && i < shown; i++)
            found[i] = bytes[i] >= 32 && bytes[i] < 127 ? bytes[i] : '.';
        snprintf(why, why_size, "expected a state serialised by this FMU (starting \"%s\"), found %zu "
                 "bytes starting \"%s\"", prefix, size, found);
        return;
    }
    size_t head = (size_t)(newline - bytes) + 1;
    size_t numbers = head - 1 - n < sizeof tail - 1 ? head - 1 - n : sizeof tail - 1;
    memcpy(tail, bytes + n, numbers);
    if (sscanf(tail, "%lu %lx", &length, &crc) != 2) {
        snprintf(why, why_size, "the state's header has no payload length and CRC-32");
        return;
    }
    unsigned long found_crc = crc32_of((const unsigned char *)bytes + head, size - head);
    if (length != size - head || crc != found_crc)
        snprintf(why, why_size, "expected %lu bytes of payload with CRC-32 %08lx, found %zu with %08lx "
                 "(truncated or altered)", length, crc, size - head, found_crc);
    else
        why[0] = '\0';
}

EXPORT fmi2Status fmi2DeSerializeFMUstate(fmi2Component c, const fmi2Byte bytes[], size_t size,
                                          fmi2FMUstate *s) {
    static fmi2Status (*f)(fmi2Component, const fmi2Byte[], size_t, fmi2FMUstate *) = NULL;
    Instance *in = begin(c, "fmi2DeSerializeFMUstate");
    if (!in) return fmi2Error;
    char why[512];
    state_problem(bytes, size, why, sizeof why);
    if (*why) {
        say(in, fmi2Error, "fmi2DeSerializeFMUstate: %s", why);
        return fmi2Error;
    }
    if (!f) f = (fmi2Status(*)(fmi2Component, const fmi2Byte[], size_t, fmi2FMUstate *))
                sym("fmi2DeSerializeFMUstate");
    if (!f) return fmi2Error;
    return finish(in, f(in->inner, bytes, size, s));
}

EXPORT fmi2Status fmi2GetBooleanStatus(fmi2Component c, const fmi2StatusKind kind, fmi2Boolean *value) {
    Instance *in = (Instance *)c;
    if (!in || !value) return fmi2Error;
    in->worst = fmi2OK;
    if (kind == fmi2Terminated) {
        *value = in->terminated;
        return fmi2OK;
    }
    return fmi2Discard;  /* no such status here (FMI 2.0: "not available") */
}

EXPORT fmi2Status fmi2GetRealStatus(fmi2Component c, const fmi2StatusKind kind, fmi2Real *value) {
    Instance *in = (Instance *)c;
    if (!in || !value) return fmi2Error;
    if (kind == fmi2LastSuccessfulTime) {
        *value = in->last_successful_time;
        return fmi2OK;
    }
    return fmi2Discard;
}

EXPORT fmi2Status fmi2GetStatus(fmi2Component c, const fmi2StatusKind kind, fmi2Status *value) {
    (void)kind; (void)value;
    return c ? fmi2Discard : fmi2Error;  /* doStep is never asynchronous */
}

EXPORT fmi2Status fmi2GetIntegerStatus(fmi2Component c, const fmi2StatusKind kind, fmi2Integer *value) {
    (void)kind; (void)value;
    return c ? fmi2Discard : fmi2Error;
}

EXPORT fmi2Status fmi2GetStringStatus(fmi2Component c, const fmi2StatusKind kind, fmi2String *value) {
    (void)kind; (void)value;
    return c ? fmi2Discard : fmi2Error;
}

EXPORT fmi2Status fmi2CancelStep(fmi2Component c) {
    Instance *in = begin(c, "fmi2CancelStep");
    if (!in) return fmi2Error;
    say(in, fmi2Error, "fmi2CancelStep: doStep is never asynchronous, there is nothing to cancel");
    return fmi2Error;
}

FORWARD(fmi2SetupExperiment,
        (fmi2Component c, fmi2Boolean tolDef, fmi2Real tol, fmi2Real t0, fmi2Boolean stopDef, fmi2Real t1),
        (in->inner, tolDef, tol, t0, stopDef, t1))
FORWARD(fmi2EnterInitializationMode, (fmi2Component c), (in->inner))
FORWARD(fmi2ExitInitializationMode, (fmi2Component c), (in->inner))
FORWARD(fmi2Terminate, (fmi2Component c), (in->inner))
FORWARD(fmi2GetReal, (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Real v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2GetInteger, (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Integer v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2GetBoolean, (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Boolean v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2GetString, (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2String v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2SetInteger, (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2SetBoolean, (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Boolean v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2SetString, (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2String v[]),
        (in->inner, vr, n, v))
FORWARD(fmi2GetFMUstate, (fmi2Component c, fmi2FMUstate *s), (in->inner, s))
FORWARD(fmi2FreeFMUstate, (fmi2Component c, fmi2FMUstate *s), (in->inner, s))
FORWARD(fmi2SerializeFMUstate, (fmi2Component c, fmi2FMUstate s, fmi2Byte b[], size_t n),
        (in->inner, s, b, n))
FORWARD(fmi2GetDirectionalDerivative,
        (fmi2Component c, const fmi2ValueReference u[], size_t nu, const fmi2ValueReference z[],
         size_t nz, const fmi2Real dv[], fmi2Real dz[]), (in->inner, u, nu, z, nz, dv, dz))
FORWARD(fmi2SetRealInputDerivatives,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer o[],
         const fmi2Real v[]), (in->inner, vr, n, o, v))
FORWARD(fmi2GetRealOutputDerivatives,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer o[],
         fmi2Real v[]), (in->inner, vr, n, o, v))
