"""The ACLs of a ``--sasl`` local broker: who may read and write which streambed topic.

The broker denies whatever no ACL allows (``allow.everyone.if.no.acl.found=false``), so
this list is the whole trust boundary (docs/operations.md, "Trust boundary"):

- the service principal (``streambed``) reads, creates and describes its input topics
  (``events``, ``labels``) without writing them; reads, writes, creates and describes its
  outputs (``scored``, ``events.dlq``, ``training``, ``model.versions``, ``model.audit``,
  ``model.commands``, ``model.learner``) and the topics and consumer groups under its
  application prefix (``streambed-<name>``: the tables' changelogs, Faust's leader topic,
  the scorer's and the learner's groups); and uses transactional ids under that prefix;
- the input principal (``analyst``) writes ``events`` and ``labels``, reads ``scored``, and
  uses consumer groups named ``scored-*``; nothing else;
- the broker user (``admin``) is a super user and needs no ACL.

>>> from streams.config import Topics
>>> plan = acl_plan(Topics(), "streambed-lending")
>>> sorted({a.resource_pattern.resource_name for a in plan
...         if a.principal == "User:analyst" and a.operation.name == "WRITE"})
['events', 'labels']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from streams.config import Topics
from streams.devtools.kafka_local import (
    INPUT_USER,
    SERVICE_USER,
    BrokerError,
    BrokerOptions,
    admin_auth,
)

#: What the service does with its outputs and with the topics under its prefix.
SERVICE_TOPIC_OPS = (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.CREATE,
                     ACLOperation.DESCRIBE, ACLOperation.DESCRIBE_CONFIGS)
#: ... and with its inputs: it creates them (``ensure_topics``) and reads them, never writes.
SERVICE_INPUT_OPS = (ACLOperation.READ, ACLOperation.CREATE, ACLOperation.DESCRIBE,
                     ACLOperation.DESCRIBE_CONFIGS)
#: Consumer groups of applications reading ``scored`` with the input principal.
INPUT_GROUP_PREFIX = "scored-"

Grant = tuple[str, ResourceType, str, ACLResourcePatternType, Iterable[ACLOperation]]


def _grants(topics: Topics, app_prefix: str) -> list[Grant]:
    literal, prefixed = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    service, reader = f"User:{SERVICE_USER}", f"User:{INPUT_USER}"
    inputs = [topics.events, topics.labels]
    outputs = [topics.scored, topics.dlq, topics.training, topics.model_versions,
               topics.model_audit, topics.model_commands, topics.learner_state]
    return [
        *[(service, topic, name, literal, SERVICE_INPUT_OPS) for name in inputs],
        *[(service, topic, name, literal, SERVICE_TOPIC_OPS) for name in outputs],
        (service, topic, app_prefix, prefixed, SERVICE_TOPIC_OPS),
        (service, group, app_prefix, prefixed, (ACLOperation.READ, ACLOperation.DESCRIBE)),
        (service, ResourceType.TRANSACTIONAL_ID, app_prefix, prefixed,
         (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        (reader, topic, topics.events, literal, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        (reader, topic, topics.labels, literal, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        (reader, topic, topics.scored, literal, (ACLOperation.READ, ACLOperation.DESCRIBE)),
        (reader, group, INPUT_GROUP_PREFIX, prefixed,
         (ACLOperation.READ, ACLOperation.DESCRIBE)),
    ]


def acl_plan(topics: Topics, app_prefix: str) -> list[ACL]:
    """Every ALLOW ACL for ``topics`` and the application prefix (``streambed-<name>``)."""
    return [
        ACL(principal=principal, host="*", operation=op,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(rtype, name, pattern))
        for principal, rtype, name, pattern, ops in _grants(topics, app_prefix)
        for op in ops
    ]


def grant_acls(opts: BrokerOptions, topics: Topics, app_prefix: str,
               log: Callable[[str], None] = print) -> int:
    """Create the ACLs of :func:`acl_plan` on the running ``--sasl`` broker (as its super
    user); creating an ACL that exists is a no-op. Return how many were requested."""
    from kafka import KafkaAdminClient

    plan = acl_plan(topics, app_prefix)
    admin = KafkaAdminClient(bootstrap_servers=opts.bootstrap, client_id="streambed-acls",
                             **admin_auth(opts))
    try:
        result = admin.create_acls(plan)
    finally:
        admin.close()
    if result.get("failed"):
        acl, err = result["failed"][0]
        raise BrokerError(f"kafka: {len(result['failed'])} ACLs not created, e.g. {acl}: {err}")
    log(f"kafka: {len(plan)} ACLs for topics {topics.events}, {topics.labels}, "
        f"{topics.scored}, ... and prefix {app_prefix!r}")
    return len(plan)
