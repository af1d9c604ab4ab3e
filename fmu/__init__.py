"""FMI 2.0 support: export the twin as a co-simulation FMU (``fmu.build``, ``fmu.slave``).

Nothing is imported here: this package is also packed inside the FMU, where only
``fmu.slave`` is loaded (never TensorFlow, never the build tools).
"""
