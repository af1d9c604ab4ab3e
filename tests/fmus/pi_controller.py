"""A PI controller as a PythonFMU co-simulation slave: a foreign FMU for the import tests.

control = clamp(kp * e + ki * integral(e), 0, control_max) with e = setpoint - measurement;
the integral stops while the output saturates in the direction of the error (anti-windup).
PythonFMU 0.7 writes no units or bounds, so :meth:`to_xml` adds them (a unit table, then
``unit``/``min``/``max`` on the Real elements) the way a Modelica tool would.
"""
from xml.etree.ElementTree import Element, SubElement

from pythonfmu import Fmi2Causality, Fmi2Slave, Fmi2Variability, Real

#: variable -> (unit, min, max); kp and ki have no unit (A/V is not a co2twin unit)
_ATTRIBUTES = {
    "measurement": ("V", 0.0, 100.0),
    "setpoint": ("V", 0.0, 10.0),
    "control": ("A", 0.0, 50.0),
    "kp": (None, 0.0, 1000.0),
    "ki": (None, 0.0, 1000.0),
    "control_max": ("A", 0.0, 50.0),
}
#: SI definitions of the units used (FMI 2.0 BaseUnit exponents)
_UNITS = {"V": {"kg": "1", "m": "2", "s": "-3", "A": "-1"}, "A": {"A": "1"}}


class PIController(Fmi2Slave):
    """PI controller: drives ``control`` so that ``measurement`` follows ``setpoint``."""

    author = "co2twin tests"
    description = "PI controller with anti-windup"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.measurement = 0.0
        self.setpoint = 3.5
        self.control = 0.0
        self.kp = 2.0
        self.ki = 1.0
        self.control_max = 20.0
        self.integral = 0.0
        self.register_variable(Real("measurement", causality=Fmi2Causality.input,
                                    description="measured value"))
        self.register_variable(Real("setpoint", causality=Fmi2Causality.input,
                                    description="value to reach"))
        self.register_variable(Real("control", causality=Fmi2Causality.output,
                                    description="controller output"))
        self.register_variable(Real("kp", causality=Fmi2Causality.parameter,
                                    variability=Fmi2Variability.tunable,
                                    description="proportional gain"))
        self.register_variable(Real("ki", causality=Fmi2Causality.parameter,
                                    variability=Fmi2Variability.fixed,
                                    description="integral gain per second"))
        self.register_variable(Real("control_max", causality=Fmi2Causality.parameter,
                                    variability=Fmi2Variability.fixed,
                                    description="largest output"))
        self.register_variable(Real("integral", causality=Fmi2Causality.local,
                                    description="integral of the error"))

    def _output(self, error):
        return min(max(self.kp * error + self.ki * self.integral, 0.0), self.control_max)

    def exit_initialization_mode(self):
        self.control = self._output(self.setpoint - self.measurement)

    def do_step(self, current_time, step_size):
        error = self.setpoint - self.measurement
        unclamped = self.kp * error + self.ki * (self.integral + error * step_size)
        if 0.0 <= unclamped <= self.control_max or (unclamped > self.control_max) != (error > 0):
            self.integral += error * step_size
        self.control = self._output(error)
        return True

    def to_xml(self, model_options=None):
        root = super().to_xml(model_options or {})
        units = Element("UnitDefinitions")
        for name, exponents in _UNITS.items():
            SubElement(SubElement(units, "Unit", {"name": name}), "BaseUnit", exponents)
        root.insert(list(root).index(root.find("CoSimulation")) + 1, units)
        for variable in root.iter("ScalarVariable"):
            unit, low, high = _ATTRIBUTES.get(variable.get("name"), (None, None, None))
            real = variable.find("Real")
            if unit is not None:
                real.set("unit", unit)
            if low is not None:
                real.set("min", repr(low))
                real.set("max", repr(high))
        return root
