"""The OCPP-J 1.6 adapter: the only package that imports `ocpp` or `websockets`."""
