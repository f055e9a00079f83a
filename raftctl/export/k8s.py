"""``raftctl export k8s``: a StatefulSet with a headless Service, a ConfigMap and a Secret.

Pod ``<name>-<i>`` runs the ``i``-th node of the cluster file, found at ``<name>-<i>.<name>``
through the headless Service (``publishNotReadyAddresses``: peers must find each other before any
of them is ready, since ready means a leader is known). Each pod has a PersistentVolumeClaim of its
own for its state (``volumeClaimTemplates``); the cluster's secrets come from a Secret, written
to a file of its own (mode 0600) so it can be kept out of version control.
"""

from __future__ import annotations

import re

from raftnode.config import ClusterConfig

from . import layout, yamltext
from .files import ExportFile

MANIFEST_FILE = "cluster.yaml"
SECRET_FILE = "secret.yaml"


def resource_name(config: ClusterConfig) -> str:
    """The cluster's name as a DNS label (the StatefulSet's, the Service's and the pods' prefix)."""
    name = re.sub(r"[^a-z0-9-]+", "-", config.name.lower()).strip("-")[:50].strip("-")
    return name or "raftctl"


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "raftnode", "app.kubernetes.io/instance": name}


def _node_script(config: ClusterConfig) -> str:
    """Shell that picks the node of this pod by the ordinal ending its host name, and runs it."""
    command = " ".join(layout.node_command('"$1"'))
    return f'set -- {" ".join(config.node_ids)}; shift "${{HOSTNAME##*-}}"; exec {command}'


def _probe(config: ClusterConfig, *, ready: bool) -> dict:
    return {
        "exec": {"command": layout.probe_command(config, ready=ready)},
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3 if ready else 6,
    }


def _container(config: ClusterConfig, image_name: str) -> dict:
    peer_port, client_port = layout.ports(config)
    return {
        "name": "raftnode",
        "image": image_name,
        "args": ["sh", "-c", _node_script(config)],
        "ports": [{"name": "peer", "containerPort": peer_port}, {"name": "client", "containerPort": client_port}],
        "volumeMounts": [
            {"name": "state", "mountPath": layout.STATE_DIR},
            {"name": "config", "mountPath": layout.CONFIG_PATH.rsplit("/", 1)[0], "readOnly": True},
            {"name": "secrets", "mountPath": layout.SECRETS_MOUNT.rsplit("/", 1)[0], "readOnly": True},
        ],
        "readinessProbe": _probe(config, ready=True),
        "livenessProbe": _probe(config, ready=False),
    }


def statefulset(config: ClusterConfig, image_name: str, storage: str) -> dict:
    name = resource_name(config)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "serviceName": name,
            "replicas": len(config.nodes),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": _labels(name)},
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "containers": [_container(config, image_name)],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                        {"name": "secrets", "secret": {"secretName": f"{name}-secrets", "defaultMode": 0o400}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "state"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
                }
            ],
        },
    }


def headless_service(config: ClusterConfig) -> dict:
    name = resource_name(config)
    peer_port, client_port = layout.ports(config)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": _labels(name),
            "ports": [{"name": "peer", "port": peer_port}, {"name": "client", "port": client_port}],
        },
    }


def config_map(config: ClusterConfig) -> dict:
    name = resource_name(config)
    text = layout.container_config_text(config, lambda index, _node_id: f"{name}-{index}.{name}")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "labels": _labels(name)},
        "data": {layout.CONFIG_PATH.rsplit("/", 1)[1]: text},
    }


def secret(config: ClusterConfig, secrets_text: str) -> dict:
    name = resource_name(config)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-secrets", "labels": _labels(name)},
        "type": "Opaque",
        "stringData": {layout.SECRETS_MOUNT.rsplit("/", 1)[1]: secrets_text},
    }


def k8s_files(config: ClusterConfig, secrets_text: str, image_name: str, storage: str) -> list[ExportFile]:
    """The manifests (ConfigMap, headless Service, StatefulSet) and the Secret (mode 0600)."""
    documents = [config_map(config), headless_service(config), statefulset(config, image_name, storage)]
    return [
        ExportFile(MANIFEST_FILE, yamltext.dumps_all(documents)),
        ExportFile(SECRET_FILE, yamltext.dumps(secret(config, secrets_text)), 0o600),
    ]
