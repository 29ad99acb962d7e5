#!/usr/bin/env python3
"""Validates deploy/kubernetes/ offline, as CI does.

1. Every object against the Kubernetes OpenAPI schema of its kind, strictly (an unknown field
   fails), with the schemas `kubernetes-validate` ships (`pip install kubernetes-validate`).
2. The ServiceMonitor, a CRD the schemas do not know, against the schema below: the fields
   this project uses, with their documented types, and nothing else.
3. What the schemas cannot say: the pieces fit together (selectors, ports, names, volumes,
   the config's state path and listen port), and the pod keeps its guarantees (one replica,
   non-root, read-only root file system, no privilege escalation, no capabilities, probes on
   /healthz and /readyz, requests and limits), and kustomization.yaml lists every manifest.

Usage: validate.py [DIR]   (default: this script's directory). Exit 1 on any failure.
"""

import pathlib
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
STATE_PATH = "/var/lib/entra-writeback"
DURATION = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"


def closed(properties, required=()):
    """An object schema with exactly these properties allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR = closed(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": closed({"name": {"type": "string"}, "labels": LABELS}, ["name"]),
        "spec": closed(
            {
                "jobLabel": {"type": "string"},
                "selector": closed({"matchLabels": LABELS}, ["matchLabels"]),
                "namespaceSelector": closed(
                    {"any": {"type": "boolean"}, "matchNames": {"type": "array"}}
                ),
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": closed(
                        {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        },
                        ["port"],
                    ),
                },
            },
            ["selector", "endpoints"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)


def load(directory):
    """Every object of every manifest, as (file name, object)."""
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                objects.append((path.name, doc))
    return objects


def schema_errors(objects):
    errors = []
    for name, obj in objects:
        what = f"{name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            if obj.get("kind") == "ServiceMonitor":
                jsonschema.validate(obj, SERVICE_MONITOR)
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path) or "(top)"
            errors.append(f"{what}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{what}: {e.message}")
    return errors


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


def one(objects, kind):
    found = [o for _, o in objects if o.get("kind") == kind]
    if len(found) != 1:
        raise SystemExit(f"expected exactly one {kind}, found {len(found)}")
    return found[0]


def fit_errors(objects):
    """The cross-object and guarantee checks; each failure is one line."""
    errors = []

    def need(ok, message):
        if not ok:
            errors.append(message)

    sts, svc = one(objects, "StatefulSet"), one(objects, "Service")
    smon, pdb = one(objects, "ServiceMonitor"), one(objects, "PodDisruptionBudget")
    cm, secret = one(objects, "ConfigMap"), one(objects, "Secret")
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    need(spec.get("replicas") == 1, "statefulset: replicas must be 1 (one active instance)")
    need(subset(spec["selector"]["matchLabels"], labels), "statefulset: selector misses its pods")
    need(spec.get("serviceName") == svc["metadata"]["name"], "statefulset: serviceName")
    need(subset(svc["spec"]["selector"], labels), "service: selector misses the pods")
    need(subset(pdb["spec"]["selector"]["matchLabels"], labels), "pdb: selector misses the pods")
    need(
        subset(smon["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels", {})),
        "servicemonitor: selector misses the service",
    )
    svc_ports = {p.get("name") for p in svc["spec"]["ports"]}
    for ep in smon["spec"]["endpoints"]:
        need(ep["port"] in svc_ports, f"servicemonitor: no service port named {ep['port']}")
    need(
        pod.get("securityContext", {}).get("runAsNonRoot") is True, "pod: runAsNonRoot"
    )
    need(pod.get("securityContext", {}).get("runAsUser", 0) > 0, "pod: runAsUser non-zero")
    (container,) = pod["containers"]
    sc = container.get("securityContext", {})
    need(sc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem")
    need(sc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation")
    need(sc.get("capabilities", {}).get("drop") == ["ALL"], "container: drop ALL capabilities")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = container.get(probe, {}).get("httpGet", {})
        need(get.get("path") == path, f"container: {probe} must GET {path}")
        need(get.get("port") in ports, f"container: {probe} port is not a container port")
    for side in ["requests", "limits"]:
        need("memory" in container.get("resources", {}).get(side, {}), f"resources.{side}.memory")
    need("cpu" in container["resources"].get("requests", {}), "resources.requests.cpu")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    need(mounts.get(STATE_PATH) in claims, f"{STATE_PATH} must be a volumeClaimTemplate")
    for mount in container.get("volumeMounts", []):
        need(mount["name"] in volumes or mount["name"] in claims, f"no volume {mount['name']}")
    for vol in volumes.values():
        if "configMap" in vol:
            need(vol["configMap"]["name"] == cm["metadata"]["name"], "configMap volume name")
        if "secret" in vol:
            need(vol["secret"]["secretName"] == secret["metadata"]["name"], "secret volume name")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    config_path = env.get("ENTRA_WRITEBACK_CONFIG", "")
    config_dir, _, config_file = config_path.rpartition("/")
    need(volumes.get(mounts.get(config_dir), {}).get("configMap"), "config file not mounted")
    need(config_file in cm.get("data", {}), f"configmap: no key {config_file}")
    creds = env.get("CREDENTIALS_DIRECTORY")
    need(volumes.get(mounts.get(creds), {}).get("secret"), "CREDENTIALS_DIRECTORY not mounted")
    toml = tomllib.loads(cm["data"].get(config_file, ""))
    need(toml.get("state", {}).get("path") == STATE_PATH, f"config: state.path != {STATE_PATH}")
    listen = toml.get("http", {}).get("listen", "")
    need(listen.endswith(f":{ports.get('http')}"), "config: http.listen port != container port")
    need(not listen.startswith("127."), "config: http.listen on loopback: probes cannot reach it")
    return errors


def kustomization_errors(directory, objects):
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed, files = sorted(kust.get("resources", [])), sorted({n for n, _ in objects})
    if listed != files:
        return [f"kustomization.yaml: resources {listed} != manifests {files}"]
    return []


def main():
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else __file__).resolve()
    if directory.is_file():
        directory = directory.parent
    objects = load(directory)
    errors = schema_errors(objects) + fit_errors(objects) + kustomization_errors(directory, objects)
    for e in errors:
        print(f"kubernetes: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"kubernetes: {len(objects)} objects valid (Kubernetes {KUBERNETES_VERSION}, strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
