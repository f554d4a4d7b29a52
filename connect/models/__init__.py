from connect.models.activity import ActivityCount
from connect.models.audit import AuditEvent
from connect.models.authorizations import AuthorizationRequest
from connect.models.base import Role
from connect.models.connectors import Connector, ConnectorType
from connect.models.credentials import DeploymentCredential, TrustedIssuer, TrustedIssuerRule
from connect.models.deliveries import Delivery, DeliveryAttempt, InboundEvent
from connect.models.destinations import TriggerDestination
from connect.models.heartbeats import Heartbeat
from connect.models.installations import Grant, Installation
from connect.models.links import ProjectLink
from connect.models.projects import Environment, Project
from connect.models.proxy_calls import ProxyCall
from connect.models.signing_keys import SigningKey
from connect.models.teams import Membership, Team
from connect.models.tokens import MintedToken, TokenIssue

__all__ = [
    "ActivityCount",
    "AuditEvent",
    "AuthorizationRequest",
    "Connector",
    "ConnectorType",
    "Delivery",
    "DeliveryAttempt",
    "DeploymentCredential",
    "Environment",
    "Grant",
    "Heartbeat",
    "InboundEvent",
    "Installation",
    "Membership",
    "MintedToken",
    "Project",
    "ProjectLink",
    "ProxyCall",
    "Role",
    "SigningKey",
    "Team",
    "TokenIssue",
    "TriggerDestination",
    "TrustedIssuer",
    "TrustedIssuerRule",
]
