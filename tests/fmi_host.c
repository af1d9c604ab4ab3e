/*
 * Minimal FMI 2.0 co-simulation host in C, used by the FMU tests (tests/test_fmu_*.py).
 *
 * It loads binaries/linux64/Co2Twin.so as the FMI Library does (dlopen RTLD_NOW |
 * RTLD_LOCAL, one handle per unpack folder), prints results as "LABEL vr value" lines with
 * %.17g (bit-exact), statuses as "NAME status" lines, and the FMU's log messages on stderr
 * as "[instance status category] message". FMI_HOST_LOGGING=1 instantiates with
 * loggingOn (the fmi2OK messages then show). Any unexpected status exits 3.
 *
 *   run DIR GUID N H INPUTS OUTPUTS
 *       instance A (INPUTS "vr=value,..." set in initialisation) and B (scenario inputs)
 *       side by side for N steps of H s -> "A ..."/"B ..."; reset A, run again -> "A2 ...";
 *       then a NaN input on B -> "NAN status".
 *   soak DIR GUID N INPUT_VR OUTPUTS
 *       one instance, N doSteps of 1 s, each preceded by setReal of INPUT_VR (5.0 and 5.5
 *       alternating every 100 steps) and followed by getReal of OUTPUTS; "RSS pct kB"
 *       (from /proc/self/statm) at 10 % and 100 %, "SECONDS s", "OUT vr value".
 *   lifecycle GUID N H OUTPUTS DIR1 DIR2 DIR3
 *       the library of each folder loaded on its own (dlclose after use), one process:
 *       DIR1: instantiate, N steps -> "R1", free, delete DIR1; DIR2: instantiate, N steps
 *       -> "R2" and keep it; DIR3: a second live instance, N steps -> "R3"; free the DIR2
 *       instance, delete DIR2; reset the DIR3 instance, N steps -> "R4"; free, delete DIR3.
 *   steps DIR GUID H T_END OUTPUTS
 *       doSteps of H s from 0 until T_END (the last one shorter if needed) -> "S ...",
 *       and "LAST time" (fmi2LastSuccessfulTime).
 *   save DIR GUID N H OUTPUTS FILE
 *       N steps, fmi2GetFMUstate + fmi2SerializeFMUstate into FILE, N more steps -> "S ...".
 *   restore DIR GUID N H OUTPUTS FILE
 *       a fresh instance: fmi2DeSerializeFMUstate of FILE -> "DESERIALIZE status"; if OK,
 *       fmi2SetFMUstate, N steps from N*H -> "S ...".
 *   bad DIR GUID INPUT_VR ON_BAD_INPUT_VR CLAMPED_VR
 *       out-of-bounds input -1 with on_bad_input=error: "SET status", "TERMINATED b",
 *       "STEP status", "VALUE v"; then on_bad_input=clamp: "SETSTRING status",
 *       "CLAMP status", "VALUE v", "COUNT n", "STEP status", "TERMINATED b";
 *       then a doStep at a wrong time: "WRONGTIME status", "TERMINATED b".
 */
#define _XOPEN_SOURCE 700
#include <dlfcn.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void *fmi2Component;
typedef void *fmi2FMUstate;
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
typedef fmi2Status (*GetInteger)(fmi2Component, const fmi2ValueReference *, size_t, int *);
typedef fmi2Status (*SetString)(fmi2Component, const fmi2ValueReference *, size_t, const char *const *);
typedef fmi2Status (*DoStep)(fmi2Component, double, double, int);
typedef fmi2Status (*GetState)(fmi2Component, fmi2FMUstate *);
typedef fmi2Status (*SetState)(fmi2Component, fmi2FMUstate);
typedef fmi2Status (*StateSize)(fmi2Component, fmi2FMUstate, size_t *);
typedef fmi2Status (*Serialize)(fmi2Component, fmi2FMUstate, char *, size_t);
typedef fmi2Status (*Deserialize)(fmi2Component, const char *, size_t, fmi2FMUstate *);
typedef fmi2Status (*BooleanStatus)(fmi2Component, int, int *);
typedef fmi2Status (*RealStatus)(fmi2Component, int, double *);

static void logger(void *env, const char *name, fmi2Status status, const char *cat,
                   const char *msg, ...) {
    va_list args;
    va_start(args, msg);
    fprintf(stderr, "[%s %d %s] ", name, status, cat ? cat : "(null)");
    vfprintf(stderr, msg, args);
    fprintf(stderr, "\n");
    va_end(args);
    (void)env;
}

#define CHECK(call, what) do { fmi2Status s_ = (call); \
    if (s_ > 1) { fprintf(stderr, "%s failed: status %d\n", what, s_); exit(3); } } while (0)

/* one unpacked FMU: its library handle and functions */
typedef struct {
    void *lib;
    char uri[4200];
    Instantiate instantiate;
    FreeInstance free_instance;
    SetupExperiment setup;
    Simple enter, exit_init, terminate, reset;
    GetReal get_real;
    SetReal set_real;
    GetInteger get_integer;
    SetString set_string;
    DoStep do_step;
    GetState get_state;
    SetState set_state;
    StateSize state_size;
    Serialize serialize;
    Deserialize deserialize;
    BooleanStatus boolean_status;
    RealStatus real_status;
} Fmi;

static void *need(void *lib, const char *name) {
    void *f = dlsym(lib, name);
    if (!f) { fprintf(stderr, "missing %s\n", name); exit(2); }
    return f;
}

static void open_fmu(const char *dir, Fmi *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/binaries/linux64/Co2Twin.so", dir);
    snprintf(f->uri, sizeof f->uri, "file://%s/resources", dir);
    f->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!f->lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(2); }
    f->instantiate = (Instantiate)need(f->lib, "fmi2Instantiate");
    f->free_instance = (FreeInstance)need(f->lib, "fmi2FreeInstance");
    f->setup = (SetupExperiment)need(f->lib, "fmi2SetupExperiment");
    f->enter = (Simple)need(f->lib, "fmi2EnterInitializationMode");
    f->exit_init = (Simple)need(f->lib, "fmi2ExitInitializationMode");
    f->terminate = (Simple)need(f->lib, "fmi2Terminate");
    f->reset = (Simple)need(f->lib, "fmi2Reset");
    f->get_real = (GetReal)need(f->lib, "fmi2GetReal");
    f->set_real = (SetReal)need(f->lib, "fmi2SetReal");
    f->get_integer = (GetInteger)need(f->lib, "fmi2GetInteger");
    f->set_string = (SetString)need(f->lib, "fmi2SetString");
    f->do_step = (DoStep)need(f->lib, "fmi2DoStep");
    f->get_state = (GetState)need(f->lib, "fmi2GetFMUstate");
    f->set_state = (SetState)need(f->lib, "fmi2SetFMUstate");
    f->state_size = (StateSize)need(f->lib, "fmi2SerializedFMUstateSize");
    f->serialize = (Serialize)need(f->lib, "fmi2SerializeFMUstate");
    f->deserialize = (Deserialize)need(f->lib, "fmi2DeSerializeFMUstate");
    f->boolean_status = (BooleanStatus)need(f->lib, "fmi2GetBooleanStatus");
    f->real_status = (RealStatus)need(f->lib, "fmi2GetRealStatus");
}

static fmi2CallbackFunctions callbacks = {logger, calloc, free, NULL, NULL};

static fmi2Component start(Fmi *f, const char *name, const char *guid) {
    int logging = getenv("FMI_HOST_LOGGING") != NULL;
    fmi2Component c = f->instantiate(name, 1, guid, f->uri, &callbacks, 0, logging);
    if (!c) { fprintf(stderr, "fmi2Instantiate failed\n"); exit(3); }
    CHECK(f->setup(c, 0, 0.0, 0.0, 0, 0.0), "setup");
    CHECK(f->enter(c), "enter");
    CHECK(f->exit_init(c), "exit");
    return c;
}

static size_t parse_list(const char *text, fmi2ValueReference *vr, double *val) {
    size_t n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n < 64; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        vr[n] = (fmi2ValueReference)strtoul(tok, NULL, 10);
        if (val) val[n] = eq ? strtod(eq + 1, NULL) : 0.0;
        n++;
    }
    free(copy);
    return n;
}

static void print_outputs(Fmi *f, fmi2Component c, const char *label, const char *outputs) {
    fmi2ValueReference vr[64];
    double v[64];
    size_t n = parse_list(outputs, vr, NULL);
    CHECK(f->get_real(c, vr, n, v), "getReal");
    for (size_t i = 0; i < n; i++) printf("%s %u %.17g\n", label, vr[i], v[i]);
    fflush(stdout);
}

static void run_steps(Fmi *f, fmi2Component c, double t0, int steps, double h) {
    for (int k = 0; k < steps; k++) CHECK(f->do_step(c, t0 + k * h, h, 1), "doStep");
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void delete_tree(const char *dir) {
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        fprintf(stderr, "cannot delete %s\n", dir);
        exit(4);
    }
}

static long rss_kb(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) { fprintf(stderr, "cannot read statm\n"); exit(4); }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int soak(const char *dir, const char *guid, long steps, fmi2ValueReference in_vr, const char *outputs) {
    fmi2ValueReference out_vr[64];
    double out_val[64];
    size_t n_out = parse_list(outputs, out_vr, NULL);
    Fmi f;
    open_fmu(dir, &f);
    fmi2Component c = start(&f, "soak", guid);
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

static int run(const char *dir, const char *guid, int steps, double h, const char *inputs, const char *outputs) {
    fmi2ValueReference in_vr[64];
    double in_val[64];
    size_t n_in = strlen(inputs) ? parse_list(inputs, in_vr, in_val) : 0;
    Fmi f;
    open_fmu(dir, &f);
    int logging = getenv("FMI_HOST_LOGGING") != NULL;
    fmi2Component a = f.instantiate("A", 1, guid, f.uri, &callbacks, 0, logging);
    fmi2Component b = f.instantiate("B", 1, guid, f.uri, &callbacks, 0, logging);
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
        for (int k = 0; k < steps; k++) {
            CHECK(f.do_step(a, k * h, h, 1), "doStep A");
            if (round == 0) CHECK(f.do_step(b, k * h, h, 1), "doStep B");
        }
        print_outputs(&f, a, round ? "A2" : "A", outputs);
        if (round == 0) {
            print_outputs(&f, b, "B", outputs);
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

static int lifecycle(const char *guid, int steps, double h, const char *outputs, char **dirs) {
    Fmi f1, f2, f3;
    open_fmu(dirs[0], &f1);
    fmi2Component c1 = start(&f1, "first", guid);
    run_steps(&f1, c1, 0.0, steps, h);
    print_outputs(&f1, c1, "R1", outputs);
    CHECK(f1.terminate(c1), "terminate first");
    f1.free_instance(c1);
    dlclose(f1.lib);
    delete_tree(dirs[0]);

    open_fmu(dirs[1], &f2);
    fmi2Component c2 = start(&f2, "second", guid);
    run_steps(&f2, c2, 0.0, steps, h);
    print_outputs(&f2, c2, "R2", outputs);

    open_fmu(dirs[2], &f3);
    fmi2Component c3 = start(&f3, "third", guid);
    run_steps(&f3, c3, 0.0, steps, h);
    print_outputs(&f3, c3, "R3", outputs);

    f2.free_instance(c2);
    dlclose(f2.lib);
    delete_tree(dirs[1]);
    CHECK(f3.reset(c3), "reset third");
    CHECK(f3.setup(c3, 0, 0.0, 0.0, 0, 0.0), "setup third");
    CHECK(f3.enter(c3), "enter third");
    CHECK(f3.exit_init(c3), "exit third");
    run_steps(&f3, c3, 0.0, steps, h);
    print_outputs(&f3, c3, "R4", outputs);
    f3.free_instance(c3);
    dlclose(f3.lib);
    delete_tree(dirs[2]);
    return 0;
}

static int steps_mode(const char *dir, const char *guid, double h, double t_end, const char *outputs) {
    Fmi f;
    open_fmu(dir, &f);
    fmi2Component c = start(&f, "steps", guid);
    double t = 0.0;
    long k = 0;
    while (t < t_end - 1e-9 * t_end) {
        double step = (k + 1) * h > t_end ? t_end - t : h;
        CHECK(f.do_step(c, t, step, 1), "doStep");
        k++;
        t = k * h < t_end ? k * h : t_end;
    }
    print_outputs(&f, c, "S", outputs);
    double last = NAN;
    CHECK(f.real_status(c, 2 /* fmi2LastSuccessfulTime */, &last), "fmi2GetRealStatus");
    printf("LAST %.17g\n", last);
    f.free_instance(c);
    fflush(stdout);
    return 0;
}

static int save(const char *dir, const char *guid, int steps, double h, const char *outputs, const char *file) {
    Fmi f;
    open_fmu(dir, &f);
    fmi2Component c = start(&f, "save", guid);
    run_steps(&f, c, 0.0, steps, h);
    fmi2FMUstate state = NULL;
    size_t size = 0;
    CHECK(f.get_state(c, &state), "fmi2GetFMUstate");
    CHECK(f.state_size(c, state, &size), "fmi2SerializedFMUstateSize");
    char *bytes = malloc(size);
    CHECK(f.serialize(c, state, bytes, size), "fmi2SerializeFMUstate");
    FILE *out = fopen(file, "wb");
    if (!out || fwrite(bytes, 1, size, out) != size) { fprintf(stderr, "cannot write %s\n", file); return 4; }
    fclose(out);
    free(bytes);
    run_steps(&f, c, steps * h, steps, h);
    print_outputs(&f, c, "S", outputs);
    f.free_instance(c);
    return 0;
}

static int restore(const char *dir, const char *guid, int steps, double h, const char *outputs, const char *file) {
    Fmi f;
    open_fmu(dir, &f);
    fmi2Component c = start(&f, "restore", guid);
    FILE *in = fopen(file, "rb");
    if (!in) { fprintf(stderr, "cannot read %s\n", file); return 4; }
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *bytes = malloc(size > 0 ? size : 1);
    if (fread(bytes, 1, size, in) != (size_t)size) { fprintf(stderr, "cannot read %s\n", file); return 4; }
    fclose(in);
    fmi2FMUstate state = NULL;
    fmi2Status s = f.deserialize(c, bytes, (size_t)size, &state);
    printf("DESERIALIZE %d\n", s);
    fflush(stdout);
    free(bytes);
    if (s > 1) { f.free_instance(c); return 0; }
    CHECK(f.set_state(c, state), "fmi2SetFMUstate");
    run_steps(&f, c, steps * h, steps, h);
    print_outputs(&f, c, "S", outputs);
    f.free_instance(c);
    return 0;
}

static int bad(const char *dir, const char *guid, fmi2ValueReference input, fmi2ValueReference mode,
               fmi2ValueReference count_vr) {
    Fmi f;
    open_fmu(dir, &f);
    fmi2Component c = start(&f, "bad", guid);
    double value = -1.0, got = NAN;
    int terminated = -1, count = -1;
    printf("SET %d\n", f.set_real(c, &input, 1, &value));
    CHECK(f.boolean_status(c, 3 /* fmi2Terminated */, &terminated), "fmi2GetBooleanStatus");
    printf("TERMINATED %d\n", terminated);
    printf("STEP %d\n", f.do_step(c, 0.0, 1.0, 1));
    CHECK(f.get_real(c, &input, 1, &got), "getReal");
    printf("VALUE %.17g\n", got);
    const char *clamp = "clamp";
    printf("SETSTRING %d\n", f.set_string(c, &mode, 1, &clamp));
    printf("CLAMP %d\n", f.set_real(c, &input, 1, &value));
    CHECK(f.get_real(c, &input, 1, &got), "getReal");
    printf("VALUE %.17g\n", got);
    printf("STEP %d\n", f.do_step(c, 1.0, 1.0, 1));
    CHECK(f.get_integer(c, &count_vr, 1, &count), "getInteger");
    printf("COUNT %d\n", count);
    CHECK(f.boolean_status(c, 3, &terminated), "fmi2GetBooleanStatus");
    printf("TERMINATED %d\n", terminated);
    printf("WRONGTIME %d\n", f.do_step(c, 5.0, 1.0, 1));
    CHECK(f.boolean_status(c, 3, &terminated), "fmi2GetBooleanStatus");
    printf("TERMINATED %d\n", terminated);
    printf("STEP %d\n", f.do_step(c, 2.0, 1.0, 1));
    f.free_instance(c);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "run") == 0 && argc == 8)
        return run(argv[2], argv[3], atoi(argv[4]), atof(argv[5]), argv[6], argv[7]);
    if (strcmp(mode, "soak") == 0 && argc == 7)
        return soak(argv[2], argv[3], atol(argv[4]), (fmi2ValueReference)strtoul(argv[5], NULL, 10), argv[6]);
    if (strcmp(mode, "lifecycle") == 0 && argc == 9)
        return lifecycle(argv[2], atoi(argv[3]), atof(argv[4]), argv[5], argv + 6);
    if (strcmp(mode, "steps") == 0 && argc == 7)
        return steps_mode(argv[2], argv[3], atof(argv[4]), atof(argv[5]), argv[6]);
    if (strcmp(mode, "save") == 0 && argc == 8)
        return save(argv[2], argv[3], atoi(argv[4]), atof(argv[5]), argv[6], argv[7]);
    if (strcmp(mode, "restore") == 0 && argc == 8)
        return restore(argv[2], argv[3], atoi(argv[4]), atof(argv[5]), argv[6], argv[7]);
    if (strcmp(mode, "bad") == 0 && argc == 7)
        return bad(argv[2], argv[3], (fmi2ValueReference)strtoul(argv[4], NULL, 10),
                   (fmi2ValueReference)strtoul(argv[5], NULL, 10), (fmi2ValueReference)strtoul(argv[6], NULL, 10));
    fprintf(stderr, "usage: fmi_host run|soak|lifecycle|steps|save|restore|bad ... (see the header)\n");
    return 1;
}
