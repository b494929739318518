"""Scale-out adapters: commands forwarded between nodes over the broker, and the node's
cluster runtime (membership, partition publishers, leader's work, draining)."""
