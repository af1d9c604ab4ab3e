/*
 * Minimal FMI 2.0 co-simulation host in C, used by tests/test_fmu_export.py.
 *
 * Usage: fmi_host DIR GUID N H INPUTS OUTPUTS
 *   DIR      extracted FMU (binaries/linux64/<id>.so is loaded from it)
 *   GUID     the model description's guid
 *   N, H     number of doSteps and their size (s)
 *   INPUTS   "vr=value,vr=value" set on instance A before initialisation ends
 *   OUTPUTS  "vr,vr,..." printed after the run
 *
 * Runs instance A (with INPUTS) and instance B (scenario inputs) side by side
 * for N steps, prints "A vr value" / "B vr value", resets A, runs it again and
 * prints "A2 vr value", then sets a NaN input on B and prints "NAN status".
 * Any other failure exits non-zero with a message.
 *
 * Soak mode: fmi_host DIR GUID soak N INPUT_VR OUTPUTS
 *   one instance, N doSteps of 1 s, each preceded by setReal of INPUT_VR (5.0 and
 *   5.5 alternating every 100 steps) and followed by getReal of OUTPUTS; prints
 *   "RSS pct kB" (resident set size from /proc/self/statm) at 10 % and 100 %,
 *   and "SECONDS s" for the stepping loop.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void *fmi2Component;
typedef unsigned int fmi2ValueReference;
typedef int fmi2Status;
typedef struct {
    void (*logger)(void *, const char *, fmi2Status, const char *, const char *, ...);
    void *(*allocateMemory)(size_t, size_t);
    void (*freeMemory)(void *);
    void (*stepFinished)(void *, fmi2Status);
    void *componentEnvironment;
} fmi2CallbackFunctions;

typedef fmi2Component (*Instantiate)(const char *, int, const char *, const char *,
                                     const fmi2CallbackFunctions *, int, int);
typedef void (*FreeInstance)(fmi2Component);
typedef fmi2Status (*SetupExperiment)(fmi2Component, int, double, double, int, double);
typedef fmi2Status (*Simple)(fmi2Component);
typedef fmi2Status (*GetReal)(fmi2Component, const fmi2ValueReference *, size_t, double *);
typedef fmi2Status (*SetReal)(fmi2Component, const fmi2ValueReference *, size_t, const double *);
typedef fmi2Status (*DoStep)(fmi2Component, double, double, int);

static void logger(void *env, const char *name, fmi2Status status, const char *cat,
                   const char *msg, ...) {
    va_list args;
    va_start(args, msg);
    fprintf(stderr, "[%s %d %s] ", name, status, cat);
    vfprintf(stderr, msg, args);
    fprintf(stderr, "\n");
    va_end(args);
    (void)env;
}

static void *lib;
static void *need(const char *name) {
    void *f = dlsym(lib, name);
    if (!f) { fprintf(stderr, "missing %s\n", name); exit(2); }
    return f;
}
#define CHECK(call, what) do { fmi2Status s_ = (call); \
    if (s_ > 1) { fprintf(stderr, "%s failed: status %d\n", what, s_); exit(3); } } while (0)

/* the FMU's library, loaded as the FMI Library loads it (RTLD_LOCAL), and its functions */
typedef struct {
    char uri[4096];
    Instantiate instantiate;
    FreeInstance free_instance;
    SetupExperiment setup;
    Simple enter, exit_init, terminate, reset;
    GetReal get_real;
    SetReal set_real;
    DoStep do_step;
} Fmi;

static int open_fmu(const char *dir, Fmi *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/binaries/linux64/Co2Twin.so", dir);
    snprintf(f->uri, sizeof f->uri, "file://%s/resources", dir);
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    f->instantiate = (Instantiate)need("fmi2Instantiate");
    f->free_instance = (FreeInstance)need("fmi2FreeInstance");
    f->setup = (SetupExperiment)need("fmi2SetupExperiment");
    f->enter = (Simple)need("fmi2EnterInitializationMode");
    f->exit_init = (Simple)need("fmi2ExitInitializationMode");
    f->terminate = (Simple)need("fmi2Terminate");
    f->reset = (Simple)need("fmi2Reset");
    f->get_real = (GetReal)need("fmi2GetReal");
    f->set_real = (SetReal)need("fmi2SetReal");
    f->do_step = (DoStep)need("fmi2DoStep");
    return 0;
}

static size_t parse_list(const char *text, fmi2ValueReference *vr, double *val) {
    size_t n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        vr[n] = (fmi2ValueReference)strtoul(tok, NULL, 10);
        if (val) val[n] = eq ? strtod(eq + 1, NULL) : 0.0;
        n++;
    }
    free(copy);
    return n;
}

static long rss_kb(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) { fprintf(stderr, "cannot read statm\n"); exit(4); }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int soak(const char *dir, const char *guid, long steps, fmi2ValueReference in_vr,
                const char *outputs) {
    fmi2ValueReference out_vr[64];
    double out_val[64];
    size_t n_out = parse_list(outputs, out_vr, NULL);
    Fmi f;
    int rc = open_fmu(dir, &f);
    if (rc) return rc;
    fmi2CallbackFunctions cb = {logger, calloc, free, NULL, NULL};
    fmi2Component c = f.instantiate("soak", 1, guid, f.uri, &cb, 0, 0);
    if (!c) { fprintf(stderr, "fmi2Instantiate failed\n"); return 3; }
    CHECK(f.setup(c, 0, 0.0, 0.0, 0, 0.0), "setup");
    CHECK(f.enter(c), "enter");
    CHECK(f.exit_init(c), "exit");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < steps; k++) {
        double current = (k / 100) % 2 ? 5.5 : 5.0;
        CHECK(f.set_real(c, &in_vr, 1, &current), "setReal");
        CHECK(f.do_step(c, (double)k, 1.0, 1), "doStep");
        CHECK(f.get_real(c, out_vr, n_out, out_val), "getReal");
        if (k + 1 == steps / 10) { printf("RSS 10 %ld\n", rss_kb()); fflush(stdout); }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("RSS 100 %ld\n", rss_kb());
    printf("SECONDS %.3f\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    for (size_t i = 0; i < n_out; i++) printf("OUT %u %.17g\n", out_vr[i], out_val[i]);
    CHECK(f.terminate(c), "terminate");
    f.free_instance(c);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[3], "soak") == 0)
        return soak(argv[1], argv[2], atol(argv[4]), (fmi2ValueReference)strtoul(argv[5], NULL, 10), argv[6]);
    if (argc != 7) { fprintf(stderr, "usage: fmi_host DIR GUID N H INPUTS OUTPUTS\n"); return 1; }
    const char *dir = argv[1], *guid = argv[2];
    int steps = atoi(argv[3]);
    double h = atof(argv[4]);
    fmi2ValueReference in_vr[64], out_vr[64];
    double in_val[64], out_val[64];
    size_t n_in = strlen(argv[5]) ? parse_list(argv[5], in_vr, in_val) : 0;
    size_t n_out = parse_list(argv[6], out_vr, NULL);

    Fmi f;
    int rc = open_fmu(dir, &f);
    if (rc) return rc;

    fmi2CallbackFunctions cb = {logger, calloc, free, NULL, NULL};
    fmi2Component a = f.instantiate("A", 1, guid, f.uri, &cb, 0, 0);
    if (getenv("FMI_HOST_DEBUG")) fprintf(stderr, "instantiated A: %p\n", a);
    fmi2Component b = f.instantiate("B", 1, guid, f.uri, &cb, 0, 0);
    if (!a || !b) { fprintf(stderr, "fmi2Instantiate failed\n"); return 3; }

    for (int round = 0; round < 2; round++) {
        CHECK(f.setup(a, 0, 0.0, 0.0, 0, 0.0), "setup A");
        CHECK(f.enter(a), "enter A");
        if (n_in) CHECK(f.set_real(a, in_vr, n_in, in_val), "setReal A");
        CHECK(f.exit_init(a), "exit A");
        if (round == 0) {
            CHECK(f.setup(b, 0, 0.0, 0.0, 0, 0.0), "setup B");
            CHECK(f.enter(b), "enter B");
            CHECK(f.exit_init(b), "exit B");
        }
        double t = 0.0;
        for (int k = 0; k < steps; k++) {
            CHECK(f.do_step(a, t, h, 1), "doStep A");
            if (round == 0) CHECK(f.do_step(b, t, h, 1), "doStep B");
            t = (k + 1) * h;
        }
        CHECK(f.get_real(a, out_vr, n_out, out_val), "getReal A");
        for (size_t i = 0; i < n_out; i++) printf("%s %u %.17g\n", round ? "A2" : "A", out_vr[i], out_val[i]);
        if (round == 0) {
            CHECK(f.get_real(b, out_vr, n_out, out_val), "getReal B");
            for (size_t i = 0; i < n_out; i++) printf("B %u %.17g\n", out_vr[i], out_val[i]);
            CHECK(f.reset(a), "reset A");
        }
    }
    double nan_value = NAN;
    fmi2ValueReference first = 0;
    printf("NAN %d\n", f.set_real(b, &first, 1, &nan_value));
    CHECK(f.terminate(a), "terminate A");
    CHECK(f.terminate(b), "terminate B");
    f.free_instance(a);
    f.free_instance(b);
    fflush(stdout);
    return 0;
}
