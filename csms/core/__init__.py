"""The pure core: OCPP decisions and transaction state. No I/O, no clock, no ids of its own."""
