"""tuimeter: run, watch and control a TuyaMCU energy meter from a terminal."""

__version__ = "0.2.0"
