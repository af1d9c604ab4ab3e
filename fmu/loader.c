/*
 * co2twin FMU loader: becomes binaries/linux64/<modelIdentifier>.so.
 *
 * PythonFMU's library (libpythonfmu-export.so) uses the CPython API but does not
 * link libpython, so a C host that dlopens it fails with
 * "undefined symbol: _Py_NoneStruct" (PythonFMU issue 202). This loader, on the
 * first fmi2 call, dlopens libpython with RTLD_NOW | RTLD_GLOBAL (unless the
 * process already has Python, e.g. FMPy), then the original PythonFMU library
 * kept beside it, and forwards every fmi2 function to it.
 *
 * fmi2SetReal refuses non-finite values with fmi2Error (logged) before they reach
 * Python: PythonFMU would turn the Python-side refusal into fmi2Fatal.
 *
 * libpython: $CO2TWIN_LIBPYTHON, else CO2TWIN_LIBPYTHON as recorded at build time.
 * When this loader starts Python, PYTHONHOME is $CO2TWIN_PYTHONHOME, else an
 * already set PYTHONHOME, else CO2TWIN_PYTHONHOME recorded at build time
 * (sys.base_prefix). Site-packages are added by the FMU's entry module
 * (resources/co2twin_fmu.py) from resources/co2twin_build.json.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CO2TWIN_LIBPYTHON
#define CO2TWIN_LIBPYTHON "libpython3.so"
#endif
#ifndef CO2TWIN_PYTHONHOME
#define CO2TWIN_PYTHONHOME ""
#endif
#ifndef CO2TWIN_PYTHONFMU_LIB
#define CO2TWIN_PYTHONFMU_LIB "Co2Twin_pythonfmu.so"
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
typedef int fmi2Status;  /* fmi2OK = 0 ... fmi2Pending = 5 */
typedef int fmi2Type;
typedef int fmi2StatusKind;
#define fmi2Error 3
#define fmi2Fatal 4

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *target = NULL;
static char load_error[2048] = "";

static void load(void) {
    Dl_info self;
    char path[4096];
    const char *libpython = getenv("CO2TWIN_LIBPYTHON");
    const char *home = getenv("CO2TWIN_PYTHONHOME");
    if (!libpython || !*libpython) libpython = CO2TWIN_LIBPYTHON;
    if (dlsym(RTLD_DEFAULT, "Py_IsInitialized") == NULL) {
        if (home && *home)
            setenv("PYTHONHOME", home, 1);
        else if (*CO2TWIN_PYTHONHOME)
            setenv("PYTHONHOME", CO2TWIN_PYTHONHOME, 0);
        if (!dlopen(libpython, RTLD_NOW | RTLD_GLOBAL)) {
            snprintf(load_error, sizeof load_error,
                     "co2twin loader: cannot load libpython %s (set CO2TWIN_LIBPYTHON): %s",
                     libpython, dlerror());
            return;
        }
    }
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
    if (!target) {
        fprintf(stderr, "%s\n", load_error);
        return NULL;
    }
    void *f = dlsym(target, name);
    if (!f) fprintf(stderr, "co2twin loader: %s missing from %s\n", name, CO2TWIN_PYTHONFMU_LIB);
    return f;
}

/* FORWARD(return type, name, error value, (params), (args)) */
#define FORWARD(R, NAME, ERR, PARAMS, ARGS)            \
    EXPORT R NAME PARAMS {                             \
        static R(*f) PARAMS = NULL;                    \
        if (!f) f = (R(*) PARAMS)sym(#NAME);           \
        if (!f) return ERR;                            \
        return f ARGS;                                 \
    }

typedef struct {
    void (*logger)(fmi2ComponentEnvironment, fmi2String, fmi2Status, fmi2String, fmi2String, ...);
    void *(*allocateMemory)(size_t, size_t);
    void (*freeMemory)(void *);
    void (*stepFinished)(fmi2ComponentEnvironment, fmi2Status);
    fmi2ComponentEnvironment componentEnvironment;
} fmi2CallbackFunctions;

FORWARD(const char *, fmi2GetTypesPlatform, "default", (void), ())
FORWARD(const char *, fmi2GetVersion, "2.0", (void), ())
FORWARD(fmi2Status, fmi2SetDebugLogging, fmi2Error,
        (fmi2Component c, fmi2Boolean on, size_t n, const fmi2String cats[]), (c, on, n, cats))
/* instance -> logger, to report refusals made here */
typedef struct Known {
    fmi2Component c;
    fmi2CallbackFunctions cb;
    char name[256];
    struct Known *next;
} Known;
static Known *known = NULL;
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;

EXPORT fmi2Component fmi2Instantiate(fmi2String name, fmi2Type type, fmi2String guid, fmi2String res,
                                     const fmi2CallbackFunctions *cb, fmi2Boolean visible,
                                     fmi2Boolean logging) {
    typedef fmi2Component (*F)(fmi2String, fmi2Type, fmi2String, fmi2String,
                               const fmi2CallbackFunctions *, fmi2Boolean, fmi2Boolean);
    F f = (F)sym("fmi2Instantiate");
    if (!f) {
        if (cb && cb->logger)
            cb->logger(cb->componentEnvironment, name, fmi2Error, "logStatusError", "%s", load_error);
        return NULL;
    }
    fmi2Component c = f(name, type, guid, res, cb, visible, logging);
    if (c && cb) {
        Known *k = calloc(1, sizeof *k);
        if (k) {
            k->c = c;
            k->cb = *cb;
            snprintf(k->name, sizeof k->name, "%s", name ? name : "");
            pthread_mutex_lock(&known_lock);
            k->next = known;
            known = k;
            pthread_mutex_unlock(&known_lock);
        }
    }
    return c;
}

EXPORT void fmi2FreeInstance(fmi2Component c) {
    static void (*f)(fmi2Component) = NULL;
    if (!f) f = (void (*)(fmi2Component))sym("fmi2FreeInstance");
    if (f) f(c);
    pthread_mutex_lock(&known_lock);
    for (Known **p = &known; *p; p = &(*p)->next) {
        if ((*p)->c == c) {
            Known *dead = *p;
            *p = dead->next;
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&known_lock);
}

EXPORT fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t n,
                              const fmi2Real v[]) {
    static fmi2Status (*f)(fmi2Component, const fmi2ValueReference[], size_t, const fmi2Real[]) = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            pthread_mutex_lock(&known_lock);
            for (Known *k = known; k; k = k->next) {
                if (k->c == c && k->cb.logger) {
                    k->cb.logger(k->cb.componentEnvironment, k->name, fmi2Error, "logStatusError",
                                 "fmi2SetReal: value reference %u: non-finite value %g refused; "
                                 "no value of this call was set", vr[i], v[i]);
                    break;
                }
            }
            pthread_mutex_unlock(&known_lock);
            return fmi2Error;
        }
    }
    if (!f) f = (fmi2Status(*)(fmi2Component, const fmi2ValueReference[], size_t, const fmi2Real[]))
                sym("fmi2SetReal");
    if (!f) return fmi2Error;
    return f(c, vr, n, v);
}
FORWARD(fmi2Status, fmi2SetupExperiment, fmi2Error,
        (fmi2Component c, fmi2Boolean tolDef, fmi2Real tol, fmi2Real t0, fmi2Boolean stopDef, fmi2Real t1),
        (c, tolDef, tol, t0, stopDef, t1))
FORWARD(fmi2Status, fmi2EnterInitializationMode, fmi2Error, (fmi2Component c), (c))
FORWARD(fmi2Status, fmi2ExitInitializationMode, fmi2Error, (fmi2Component c), (c))
FORWARD(fmi2Status, fmi2Terminate, fmi2Error, (fmi2Component c), (c))
FORWARD(fmi2Status, fmi2Reset, fmi2Error, (fmi2Component c), (c))
FORWARD(fmi2Status, fmi2GetReal, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Real v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2GetInteger, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Integer v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2GetBoolean, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2Boolean v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2GetString, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, fmi2String v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2SetInteger, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2SetBoolean, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Boolean v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2SetString, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2String v[]), (c, vr, n, v))
FORWARD(fmi2Status, fmi2GetFMUstate, fmi2Error, (fmi2Component c, fmi2FMUstate *s), (c, s))
FORWARD(fmi2Status, fmi2SetFMUstate, fmi2Error, (fmi2Component c, fmi2FMUstate s), (c, s))
FORWARD(fmi2Status, fmi2FreeFMUstate, fmi2Error, (fmi2Component c, fmi2FMUstate *s), (c, s))
FORWARD(fmi2Status, fmi2SerializedFMUstateSize, fmi2Error,
        (fmi2Component c, fmi2FMUstate s, size_t *n), (c, s, n))
FORWARD(fmi2Status, fmi2SerializeFMUstate, fmi2Error,
        (fmi2Component c, fmi2FMUstate s, fmi2Byte b[], size_t n), (c, s, b, n))
FORWARD(fmi2Status, fmi2DeSerializeFMUstate, fmi2Error,
        (fmi2Component c, const fmi2Byte b[], size_t n, fmi2FMUstate *s), (c, b, n, s))
FORWARD(fmi2Status, fmi2GetDirectionalDerivative, fmi2Error,
        (fmi2Component c, const fmi2ValueReference u[], size_t nu, const fmi2ValueReference z[],
         size_t nz, const fmi2Real dv[], fmi2Real dz[]), (c, u, nu, z, nz, dv, dz))
FORWARD(fmi2Status, fmi2SetRealInputDerivatives, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer o[],
         const fmi2Real v[]), (c, vr, n, o, v))
FORWARD(fmi2Status, fmi2GetRealOutputDerivatives, fmi2Error,
        (fmi2Component c, const fmi2ValueReference vr[], size_t n, const fmi2Integer o[],
         fmi2Real v[]), (c, vr, n, o, v))
FORWARD(fmi2Status, fmi2DoStep, fmi2Error,
        (fmi2Component c, fmi2Real t, fmi2Real h, fmi2Boolean noPrior), (c, t, h, noPrior))
FORWARD(fmi2Status, fmi2CancelStep, fmi2Error, (fmi2Component c), (c))
FORWARD(fmi2Status, fmi2GetStatus, fmi2Error,
        (fmi2Component c, const fmi2StatusKind k, fmi2Status *v), (c, k, v))
FORWARD(fmi2Status, fmi2GetRealStatus, fmi2Error,
        (fmi2Component c, const fmi2StatusKind k, fmi2Real *v), (c, k, v))
FORWARD(fmi2Status, fmi2GetIntegerStatus, fmi2Error,
        (fmi2Component c, const fmi2StatusKind k, fmi2Integer *v), (c, k, v))
FORWARD(fmi2Status, fmi2GetBooleanStatus, fmi2Error,
        (fmi2Component c, const fmi2StatusKind k, fmi2Boolean *v), (c, k, v))
FORWARD(fmi2Status, fmi2GetStringStatus, fmi2Error,
        (fmi2Component c, const fmi2StatusKind k, fmi2String *v), (c, k, v))
