"""fieldlink edge agent: GPS, panic button and dispatch orders of one unit, over MQTT.

Runs on the unit's Raspberry Pi. Imports only `wire`, the standard library, paho-mqtt,
gpsd-py3, gpiozero and click: a Pi installs `pip install '.[agent]'`, never the server.
"""
