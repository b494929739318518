"""OCPI roaming partners and what was exchanged with them (docs/ocpi.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import big_id, utc_column


class OcpiPartner(SQLModel, table=True):
    """A roaming partner (eMSP, hub, NSP...) and the state of the OCPI credentials handshake.

    Credentials tokens the partner presents to us are kept only as SHA-256 digests; the
    token csms presents to the partner must be sent, so it is kept as given (never shown).
    """

    __tablename__ = "ocpi_partners"
    __table_args__ = (
        Index("ix_ocpi_partners_token", "token_hash"),
        Index("ix_ocpi_partners_token_a", "token_a_hash"),
    )

    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=255)
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(max_length=16)
    versions_url: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=8)
    # The partner's endpoints for its version: [{identifier, role, url}].
    endpoints: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The CredentialsRoles the partner gave in its credentials.
    their_roles: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    token_a_hash: str | None = Field(default=None, max_length=64)
    token_hash: str | None = Field(default=None, max_length=64)
    outgoing_token: str | None = Field(default=None, max_length=64)
    # The partner uses credentials tokens unencoded (OCPI 2.1.1 style) in both directions.
    unencoded_token: bool = Field(default=False)
    publish_all: bool = Field(default=False)
    last_error: str | None = Field(default=None, sa_type=Text)
    registered_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)


class OcpiPartnerLocation(SQLModel, table=True):
    """A location for one partner: chosen by the operator, and what was last sent of it."""

    __tablename__ = "ocpi_partner_locations"

    partner_id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(primary_key=True, max_length=36)
    # Picked explicitly (PUT /partners/{id}/locations); false: sent under `all`.
    chosen: bool = Field(default=False)
    # None: every charger linked to the location; a list: only these chargers' EVSEs.
    charge_point_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The Location as last PUT to the partner, to mark EVSEs it no longer gets REMOVED.
    sent: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime | None = utc_column(nullable=False)


class OcpiPush(SQLModel, table=True):
    """One push waiting for a partner, sent in `id` order per partner and retried until the
    partner takes it; a newer push for the same object replaces an unsent one."""

    __tablename__ = "ocpi_pushes"
    __table_args__ = (
        Index("ix_ocpi_pushes_partner", "partner_id", "failed_at", "id"),
        Index("ix_ocpi_pushes_object", "partner_id", "object_key"),
    )

    id: int | None = big_id()
    partner_id: str = Field(max_length=64)
    object_key: str = Field(max_length=160)
    kind: str = Field(max_length=24)
    url: str | None = Field(default=None, max_length=255)
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The party it is addressed to (OCPI-to-*) when not the partner itself: a hub's client.
    to_country_code: str | None = Field(default=None, max_length=2)
    to_party_id: str | None = Field(default=None, max_length=3)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = utc_column(nullable=False)
    last_error: str | None = Field(default=None, sa_type=Text)
    # Set when the partner refused it for good (kept for the operator, not retried).
    failed_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)


class OcpiFeed(SQLModel, table=True):
    """How far the OCPI feed has read the outbox: the id of the last event turned into pushes."""

    __tablename__ = "ocpi_feed"

    name: str = Field(primary_key=True, max_length=32)
    last_event_id: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime | None = utc_column(nullable=False)


class OcpiToken(SQLModel, table=True):
    """A partner's token (OCPI Token object), pushed to us or given with a command."""

    __tablename__ = "ocpi_tokens"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "uid", "type", name="uq_ocpi_tokens_uid"),
        Index("ix_ocpi_tokens_id_tag", "id_tag"),
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(max_length=64)
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)
    uid: str = Field(max_length=36)
    type: str = Field(max_length=16)
    # The OCPP idTag the charger knows it by (the uid, or a derived one when it is longer).
    id_tag: str = Field(max_length=20)
    contract_id: str = Field(max_length=36)
    whitelist: str = Field(max_length=16)
    valid: bool
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Pushed through the Tokens module; false: only seen in a START_SESSION or RESERVE_NOW.
    pushed: bool = Field(default=True)
    last_updated: datetime | None = utc_column(nullable=False)


class OcpiAuthorization(SQLModel, table=True):
    """How a partner's token was authorized at a charger, for the Session and CDR."""

    __tablename__ = "ocpi_authorizations"
    __table_args__ = (Index("ix_ocpi_authorizations_token", "token_id", "charge_point_id"),)

    id: int | None = big_id()
    token_id: int
    charge_point_id: str | None = Field(default=None, max_length=48)
    method: str = Field(max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    status: str = Field(max_length=16)
    created_at: datetime | None = utc_column(nullable=False)


class OcpiSession(SQLModel, table=True):
    """A Session as its token's eMSP gets it (pushed, and for GET sessions)."""

    __tablename__ = "ocpi_sessions"
    __table_args__ = (Index("ix_ocpi_sessions_updated", "partner_id", "last_updated"),)

    partner_id: str = Field(primary_key=True, max_length=64)
    session_id: str = Field(primary_key=True, max_length=36)
    token_id: int
    auth_method: str = Field(max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    # The token's owner: the party this Session is for (a hub's client, or the partner).
    owner_country_code: str | None = Field(default=None, max_length=2)
    owner_party_id: str | None = Field(default=None, max_length=3)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = utc_column(nullable=False)


class OcpiCdr(SQLModel, table=True):
    """A CDR as its token's eMSP gets it: written once, never changed (mod_cdrs)."""

    __tablename__ = "ocpi_cdrs"
    __table_args__ = (Index("ix_ocpi_cdrs_updated", "partner_id", "last_updated"),)

    partner_id: str = Field(primary_key=True, max_length=64)
    cdr_id: str = Field(primary_key=True, max_length=39)
    # The token's owner: the party this CDR is for (a hub's client, or the partner).
    owner_country_code: str | None = Field(default=None, max_length=2)
    owner_party_id: str | None = Field(default=None, max_length=3)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = utc_column(nullable=False)


class OcpiReservation(SQLModel, table=True):
    """A partner's reservation_id and the OCPP reservationId csms gave the charger for it
    (mod_commands §ReserveNow Object: the eMSP's id "SHALL NOT be sent directly")."""

    __tablename__ = "ocpi_reservations"

    partner_id: str = Field(primary_key=True, max_length=64)
    reservation_id: str = Field(primary_key=True, max_length=36)
    charge_point_id: str = Field(max_length=48)
    ocpp_reservation_id: int
    created_at: datetime | None = utc_column(nullable=False)


class OcpiPartnerTariff(SQLModel, table=True):
    """A tariff as a partner last got it (mod_tariffs, csms as Sender): its last_updated,
    so that the resync pushes what changed and deletes what csms no longer has."""

    __tablename__ = "ocpi_partner_tariffs"

    partner_id: str = Field(primary_key=True, max_length=64)
    tariff_id: str = Field(primary_key=True, max_length=36)
    last_updated: datetime | None = utc_column(nullable=False)


class OcpiHubClient(SQLModel, table=True):
    """A party connected to a hub partner, as the hub reported it (mod_hub_client_info
    §ClientInfo Object, csms as Receiver)."""

    __tablename__ = "ocpi_hub_clients"

    partner_id: str = Field(primary_key=True, max_length=64)
    country_code: str = Field(primary_key=True, max_length=2)
    party_id: str = Field(primary_key=True, max_length=3)
    role: str = Field(max_length=8)
    status: str = Field(max_length=16)
    last_updated: datetime | None = utc_column(nullable=False)
