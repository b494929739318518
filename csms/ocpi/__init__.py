"""The OCPI 2.2.1 adapter: the listener for roaming partners and the client calling them."""
