"""FMI 2.0 support: export the twin as a co-simulation FMU (``fmu.build``, ``fmu.slave``,
``fmu.entry``, ``fmu/loader.c``), and import other FMUs as components (``fmu.importer``).

Nothing is imported here: this package is also packed inside the FMU, where only
``fmu.entry`` (as ``co2twin_fmu``) and ``fmu.slave`` are loaded (never TensorFlow, never
the build tools).
"""
