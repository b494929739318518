"""Business events: strict OCPI/OICP models, the CloudEvents envelope, and the MQTT publisher.

- ``models_ocpi``: pydantic models of the OCPI 2.2.1 objects we emit.
- ``models_oicp``: pydantic models of the OICP 2.3 objects we emit.
- ``envelope``: CloudEvents 1.0 structured JSON, event types, topics.
- ``mqtt``: the embedded broker and the QoS 1 publisher (the only module importing
  aiomqtt, paho and amqtt).

Nothing is imported here, so that importing the envelope does not load MQTT libraries.
"""
