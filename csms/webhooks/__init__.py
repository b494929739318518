"""Webhook deliveries: outgoing HTTP to the receivers of subscriptions (docs/webhooks.md)."""
