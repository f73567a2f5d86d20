// Validates Pando's Kubernetes manifests (k8s/, and Prometheus's RBAC in
// deploy/prometheus/rbac-k8s.yaml) offline, for
// tests/integration/test_k8s_manifests.sh, which runs it from a folder whose
// node_modules has the versions pinned in tests/k8s/package.json:
//   node validate.mjs --root REPO [--bin REPO/build/bin]
// Every object is checked against the Kubernetes OpenAPI schemas of the npm
// package kubernetes-models, unknown fields rejected; then come checks of our
// own (names, namespaces, selectors, ports, image, references, security, the
// example job, the daemons' --check-config), and a self-test that injects one
// fault per check into a copy and expects that check to catch it.
// Prints "ok - ..." / "FAIL - ..." lines; exits 1 when anything failed.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";

// The daemons' defaults of the settings checked here (README, --help).
const DAEMONS = {
  "pando-coordinator": { listen: "0.0.0.0:7070", metrics_listen: "0.0.0.0:9070" },
  "pando-ps": { listen: "0.0.0.0:7000", metrics_listen: "0.0.0.0:9000" },
  "pando-worker": { listen: "0.0.0.0:0", metrics_listen: "0.0.0.0:9100" },
};
const KUSTOMIZATION_KEYS = new Set([
  "apiVersion", "kind", "namespace", "namePrefix", "nameSuffix", "resources", "images",
  "labels", "commonLabels", "commonAnnotations", "configMapGenerator", "secretGenerator",
  "generatorOptions", "patches", "replicas", "components",
]);
const FIELD_PATHS = new Set([
  "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
  "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
]);
// Stand-ins for the downward API when expanding $(VAR) references.
const FAKE_FIELDS = { "metadata.name": "pod-0", "metadata.namespace": "NAMESPACE", "status.podIP": "10.0.0.1" };

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROOT = arg("--root") ?? ".";
const BIN = arg("--bin");
const K8S = join(ROOT, "k8s");
const PROMETHEUS = join(ROOT, "deploy", "prometheus");
const RBAC_FILE = "deploy/prometheus/rbac-k8s.yaml";

// ---------------------------------------------------------------- loading

function loadYamlDocs(path) {
  const docs = parseAllDocuments(readFileSync(path, "utf8"), { uniqueKeys: true });
  const out = [];
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) throw new Error(`${path}: ${e.message}`);
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) out.push(obj);
  }
  return out;
}

function load() {
  const kustomization = loadYamlDocs(join(K8S, "kustomization.yaml"))[0];
  const files = readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml").sort();
  const objects = [];
  for (const file of kustomization.resources ?? []) {
    if (!existsSync(join(K8S, file))) continue;
    for (const obj of loadYamlDocs(join(K8S, file))) objects.push({ file, obj });
  }
  const example = readFileSync(join(ROOT, "examples", "fashion-mlp.yaml"), "utf8");
  // Prometheus's service discovery: its namespaces, and its RBAC objects
  const monitoring = loadYamlDocs(join(PROMETHEUS, "rbac-k8s.yaml")).map((obj) => ({ file: RBAC_FILE, obj }));
  const prometheus = loadYamlDocs(join(PROMETHEUS, "prometheus-k8s.yml"))[0];
  const gitignore = existsSync(join(ROOT, ".gitignore")) ? readFileSync(join(ROOT, ".gitignore"), "utf8") : "";
  // committed files holding a private key (none may)
  const git = spawnSync("git", ["-C", ROOT, "grep", "-l", "-I", "-e", "PRIVATE KEY-----", "--", "."], { encoding: "utf8" });
  const keyFiles = git.status === 0 ? git.stdout.split("\n").filter((f) => f && !f.startsWith("tests/k8s/")) : [];
  return { kustomization, files, objects, example, monitoring, prometheus, gitignore, keyFiles };
}

// ---------------------------------------------------------------- schema + unknown fields

const validators = new Map();
async function validatorFor(apiVersion, kind) {
  const [group, version] = String(apiVersion).includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const name = `IoK8sApi${cap(group.split(".")[0])}${cap(String(version))}${kind}`;
  if (!validators.has(name)) {
    try {
      validators.set(name, (await import(`kubernetes-models/_schemas/${name}`)).validate);
    } catch {
      validators.set(name, null);
    }
  }
  return validators.get(name);
}

// The generated validators read every property they know about; a property
// of the manifest that no validator read is unknown to the schema.
function track(root) {
  const seen = new WeakMap();
  const proxies = new WeakMap();
  const wrap = (o) => {
    if (o === null || typeof o !== "object") return o;
    if (!proxies.has(o)) {
      seen.set(o, new Set());
      proxies.set(o, new Proxy(o, {
        get(target, key, receiver) {
          if (typeof key === "string") seen.get(target).add(key);
          return wrap(Reflect.get(target, key, receiver));
        },
      }));
    }
    return proxies.get(o);
  };
  return { proxy: wrap(root), seen };
}

function unknownFields(o, seen, path, out) {
  if (o === null || typeof o !== "object") return;
  if (Array.isArray(o)) {
    o.forEach((v, i) => unknownFields(v, seen, `${path}[${i}]`, out));
    return;
  }
  const read = seen.get(o) ?? new Set();
  for (const k of Object.keys(o)) {
    const p = path ? `${path}.${k}` : k;
    if (read.has(k)) unknownFields(o[k], seen, p, out);
    else out.push(`${p}: unknown field`);
  }
}

function ajvMessage(e) {
  const at = e.instancePath.replace(/^\//, "").replace(/\/(\d+)(?=\/|$)/g, "[$1]").replaceAll("/", ".") || "(top)";
  switch (e.keyword) {
    case "required": return `${at}: missing required field ${e.params.missingProperty}`;
    case "type": return `${at}: must be ${e.params.type}`;
    case "enum": return `${at}: must be one of ${e.params.allowedValues.join(", ")}`;
    case "format": return `${at}: not a valid ${e.params.format}`;
    default: return `${at}: ${e.keyword} ${JSON.stringify(e.params)}`;
  }
}

async function checkSchema({ obj }) {
  const validate = await validatorFor(obj?.apiVersion, obj?.kind);
  if (!validate) return [`no Kubernetes schema for apiVersion ${obj?.apiVersion} kind ${obj?.kind}`];
  const { proxy, seen } = track(obj);
  const errors = [];
  if (!validate(proxy)) {
    const intOrString = new Set();
    for (const e of validate.errors) {
      const m = ajvMessage(e);
      // an int-or-string error comes as type + format + oneOf: say it once
      if (e.keyword === "oneOf" || intOrString.has(e.instancePath)) continue;
      if (e.keyword === "type") intOrString.add(e.instancePath);
      errors.push(m);
    }
  }
  unknownFields(obj, seen, "", errors);
  return [...new Set(errors)];
}

// ---------------------------------------------------------------- model of the manifests

const nameOf = ({ obj }) => `${obj?.kind}/${obj?.metadata?.name}`;
const where = (o) => `${o.file} ${nameOf(o)}`;

// Pod templates of the workloads, with their containers.
function podTemplates(objects) {
  const out = [];
  for (const o of objects) {
    const t = o.obj?.spec?.template;
    if (!["Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"].includes(o.obj?.kind) || !t) continue;
    const spec = t.spec ?? {};
    const containers = [...(spec.initContainers ?? []).map((c) => ({ ...c, init: true })), ...(spec.containers ?? [])];
    out.push({ owner: o, labels: t.metadata?.labels ?? {}, spec, containers });
  }
  return out;
}

function selects(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]);
    if (e.operator === "In" && !inValues) return false;
    if (e.operator === "NotIn" && inValues) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

// Expands $(VAR) as the kubelet does, from the variables defined before;
// records references to variables that are not.
function containerEnv(c, problems) {
  const env = {};
  for (const e of c.env ?? []) {
    let value = e.value;
    if (e.valueFrom?.fieldRef) value = FAKE_FIELDS[e.valueFrom.fieldRef.fieldPath] ?? "x";
    else if (e.valueFrom) value = "x";
    value = String(value ?? "").replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, v) => {
      if (m === "$$") return "$";
      if (!Object.hasOwn(env, v)) problems?.push(`${c.name}: ${e.name} refers to $(${v}), not defined before it`);
      return env[v] ?? m;
    });
    env[e.name] = value;
  }
  return env;
}

// The ConfigMap key a file path of a container comes from, through its mounts.
function configFile(template, container, path, configMaps) {
  for (const m of container.volumeMounts ?? []) {
    const prefix = m.mountPath.replace(/\/$/, "") + "/";
    if (!path.startsWith(prefix)) continue;
    const vol = (template.spec.volumes ?? []).find((v) => v.name === m.name);
    const cm = vol?.configMap && configMaps.get(vol.configMap.name);
    if (!cm) return null;
    const rel = m.subPath ? m.subPath + "/" + path.slice(prefix.length) : path.slice(prefix.length);
    const items = vol.configMap.items;
    const key = items ? items.find((i) => i.path === rel)?.key : rel;
    return key !== undefined && Object.hasOwn(cm.data ?? {}, key) ? { cm, key, text: cm.data[key] } : null;
  }
  return null;
}

const configMapsOf = (objects) =>
  new Map(objects.filter((o) => o.obj?.kind === "ConfigMap").map((o) => [o.obj.metadata?.name, o.obj]));

// The settings a Pando daemon container ends up with: defaults, its config
// file (PANDO_CONFIG), then its PANDO_* variables.
function daemonSettings(template, c, configMaps) {
  const daemon = DAEMONS[(c.command ?? [])[0]];
  if (!daemon) return null;
  const env = containerEnv(c);
  const settings = { ...daemon };
  let file = null;
  if (env.PANDO_CONFIG) {
    file = configFile(template, c, env.PANDO_CONFIG, configMaps);
    if (file) Object.assign(settings, parse(file.text) ?? {});
  }
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith("PANDO_") && k !== "PANDO_CONFIG") settings[k.slice(6).toLowerCase()] = v;
  }
  return { settings, env, file };
}
const portOf = (address) => Number(String(address).split(":").pop());

// The port of 127.0.0.1 an exec probe `pandoctl health ... 127.0.0.1:PORT` checks.
function probeTarget(p) {
  const cmd = p?.exec?.command ?? [];
  if (cmd[0] !== "pandoctl" || cmd[1] !== "health") return undefined;
  const last = String(cmd[cmd.length - 1]);
  return last.startsWith("127.0.0.1:") ? portOf(last) : undefined;
}
// The value of --flag in a command line.
const flagOf = (cmd, flag) => { const i = (cmd ?? []).indexOf(flag); return i >= 0 ? cmd[i + 1] : undefined; };

// ---------------------------------------------------------------- the checks

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const isLabel = (s) => typeof s === "string" && s.length <= 63 && DNS_LABEL.test(s);
const isSubdomain = (s) => typeof s === "string" && s.length <= 253 && DNS_SUBDOMAIN.test(s);
const isPortName = (s) =>
  typeof s === "string" && s.length <= 15 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(s) &&
  /[a-z]/.test(s) && !s.includes("--");

function checkKustomization({ kustomization, files }) {
  const errors = [];
  if (kustomization?.kind !== "Kustomization") errors.push("kustomization.yaml: kind is not Kustomization");
  for (const k of Object.keys(kustomization ?? {}))
    if (!KUSTOMIZATION_KEYS.has(k)) errors.push(`kustomization.yaml: unknown field ${k}`);
  const listed = kustomization?.resources ?? [];
  for (const f of files) if (!listed.includes(f)) errors.push(`${f} is not in kustomization.yaml's resources`);
  for (const f of listed) if (!existsSync(join(K8S, f))) errors.push(`kustomization.yaml lists ${f}, which does not exist`);
  if (new Set(listed).size !== listed.length) errors.push("kustomization.yaml lists a file twice");
  return errors;
}

function checkNames({ objects }) {
  const errors = [];
  const seen = new Set();
  for (const o of objects) {
    const { kind, metadata } = o.obj ?? {};
    const name = metadata?.name;
    const label = ["Namespace", "StatefulSet"].includes(kind);
    if (kind === "Service" ? !(name?.length <= 63 && DNS1035_LABEL.test(name)) : label ? !isLabel(name) : !isSubdomain(name))
      errors.push(`${where(o)}: name '${name}' is not a DNS-1123 ${kind === "Service" ? "(1035) label" : label ? "label" : "subdomain"}`);
    const id = `${kind}/${metadata?.namespace}/${name}`;
    if (seen.has(id)) errors.push(`${where(o)}: defined twice`);
    seen.add(id);
    const labelSets = [metadata?.labels, o.obj?.spec?.template?.metadata?.labels];
    for (const v of o.obj?.spec?.volumeClaimTemplates ?? []) {
      labelSets.push(v.metadata?.labels);
      if (!isLabel(v.metadata?.name)) errors.push(`${where(o)}: volume claim template '${v.metadata?.name}' is not a DNS-1123 label`);
    }
    for (const labels of labelSets) {
      for (const [k, v] of Object.entries(labels ?? {})) {
        const [prefix, key] = k.includes("/") ? k.split("/") : [null, k];
        if ((prefix !== null && !isSubdomain(prefix)) || key.length > 63 || !LABEL_NAME.test(key))
          errors.push(`${where(o)}: bad label key '${k}'`);
        if (String(v).length > 63 || (v !== "" && !LABEL_NAME.test(String(v))))
          errors.push(`${where(o)}: bad label value '${v}'`);
      }
    }
    for (const p of o.obj?.spec?.ports ?? [])
      if (p.name !== undefined && !isPortName(p.name)) errors.push(`${where(o)}: port name '${p.name}' is not an IANA service name`);
    for (const k of Object.keys(o.obj?.data ?? {}))
      if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) errors.push(`${where(o)}: bad ConfigMap key '${k}'`);
  }
  for (const t of podTemplates(objects)) {
    for (const c of t.containers) {
      if (!isLabel(c.name)) errors.push(`${where(t.owner)}: container name '${c.name}' is not a DNS-1123 label`);
      for (const p of c.ports ?? [])
        if (p.name !== undefined && !isPortName(p.name)) errors.push(`${where(t.owner)}: ${c.name}: port name '${p.name}' is not an IANA service name`);
      for (const e of c.env ?? [])
        if (!/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(e.name)) errors.push(`${where(t.owner)}: ${c.name}: bad variable name '${e.name}'`);
    }
    for (const v of t.spec.volumes ?? [])
      if (!isLabel(v.name)) errors.push(`${where(t.owner)}: volume name '${v.name}' is not a DNS-1123 label`);
  }
  return errors;
}

function checkNamespace({ objects, kustomization }) {
  const errors = [];
  const want = kustomization?.namespace;
  if (!want) errors.push("kustomization.yaml sets no namespace");
  const namespaces = objects.filter((o) => o.obj?.kind === "Namespace");
  if (namespaces.length !== 1 || namespaces[0].obj.metadata?.name !== want)
    errors.push(`there must be one Namespace object, named '${want}' like kustomization.yaml's namespace`);
  for (const o of objects) {
    if (o.obj?.kind === "Namespace") continue;
    if (o.obj?.metadata?.namespace !== want) errors.push(`${where(o)}: namespace '${o.obj?.metadata?.namespace}', not '${want}'`);
  }
  return errors;
}

function checkSelectors({ objects }) {
  const errors = [];
  const templates = podTemplates(objects);
  for (const t of templates) {
    const sel = t.owner.obj.spec?.selector;
    if (t.owner.obj.kind !== "Job" || sel) {
      if (!selects(sel, t.labels)) errors.push(`${where(t.owner)}: spec.selector does not match its pod template's labels`);
      for (const other of templates)
        if (other !== t && selects(sel, other.labels)) errors.push(`${where(t.owner)}: spec.selector also matches the pods of ${nameOf(other.owner)}`);
    }
    for (const c of t.spec.topologySpreadConstraints ?? [])
      if (!selects(c.labelSelector, t.labels)) errors.push(`${where(t.owner)}: a topologySpreadConstraint does not select its own pods`);
  }
  const matching = (sel) => templates.filter((t) => selects(sel, t.labels));
  for (const o of objects) {
    const { kind, spec } = o.obj ?? {};
    if (kind === "Service" && matching({ matchLabels: spec?.selector ?? { "": "" } }).length === 0)
      errors.push(`${where(o)}: spec.selector matches no pod template`);
    if (kind === "PodDisruptionBudget" && matching(spec?.selector).length === 0)
      errors.push(`${where(o)}: spec.selector matches no pod template`);
    if (kind === "NetworkPolicy") {
      if (matching(spec?.podSelector).length === 0) errors.push(`${where(o)}: spec.podSelector matches no pod template`);
      for (const rule of spec?.ingress ?? [])
        for (const from of rule.from ?? [])
          if (from.podSelector && !from.namespaceSelector && matching(from.podSelector).length === 0)
            errors.push(`${where(o)}: an ingress podSelector matches no pod template`);
    }
  }
  return errors;
}

function checkPorts({ objects }) {
  const errors = [];
  const templates = podTemplates(objects);
  const configMaps = configMapsOf(objects);
  const hasPort = (containers, port, protocol = "TCP") =>
    containers.some((c) => (c.ports ?? []).some((p) =>
      (typeof port === "string" ? p.name === port : p.containerPort === port) && (p.protocol ?? "TCP") === protocol));
  for (const o of objects) {
    const { kind, spec } = o.obj ?? {};
    if (kind === "Service") {
      for (const t of templates.filter((t) => selects({ matchLabels: spec?.selector ?? {} }, t.labels)))
        for (const p of spec?.ports ?? [])
          if (!hasPort(t.containers, p.targetPort ?? p.port, p.protocol ?? "TCP"))
            errors.push(`${where(o)}: targetPort ${p.targetPort ?? p.port} is not a port of ${nameOf(t.owner)}'s containers`);
    }
    if (kind === "NetworkPolicy") {
      for (const t of templates.filter((t) => selects(spec?.podSelector, t.labels)))
        for (const rule of spec?.ingress ?? [])
          for (const p of rule.ports ?? [])
            if (p.port !== undefined && !hasPort(t.containers, p.port, p.protocol ?? "TCP"))
              errors.push(`${where(o)}: port ${p.port} is not a port of ${nameOf(t.owner)}'s containers`);
    }
  }
  for (const t of templates) {
    for (const c of t.containers) {
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const p = c[probe];
        const port = p?.grpc?.port ?? p?.httpGet?.port ?? p?.tcpSocket?.port ?? probeTarget(p);
        if (p && !hasPort([c], port)) errors.push(`${where(t.owner)}: ${c.name}: ${probe} port ${port} is not one of its ports`);
      }
      const d = daemonSettings(t, c, configMaps);
      if (!d) continue;
      const listen = portOf(d.settings.listen);
      if (!listen) errors.push(`${where(t.owner)}: ${c.name}: listens on port 0 (a free port): fix its port (listen) for the probes`);
      else if (!hasPort([c], listen)) errors.push(`${where(t.owner)}: ${c.name}: listens on ${d.settings.listen}, which is not one of its ports`);
      for (const probe of ["readinessProbe", "livenessProbe"])
        if (probeTarget(c[probe]) !== listen) errors.push(`${where(t.owner)}: ${c.name}: ${probe} is not a pandoctl health probe of its listen port ${listen}`);
      if (d.settings.advertise && portOf(d.settings.advertise) !== listen)
        errors.push(`${where(t.owner)}: ${c.name}: advertises ${d.settings.advertise}, but listens on ${listen}`);
      if (d.settings.metrics_listen) {
        const metrics = portOf(d.settings.metrics_listen);
        if (!metrics || !hasPort([c], metrics))
          errors.push(`${where(t.owner)}: ${c.name}: serves metrics on ${d.settings.metrics_listen}, which is not one of its ports`);
        const scrape = t.owner.obj.spec.template.metadata?.annotations?.["prometheus.io/port"];
        if (scrape !== undefined && Number(scrape) !== metrics)
          errors.push(`${where(t.owner)}: annotation prometheus.io/port ${scrape} is not the metrics port ${metrics}`);
      }
    }
  }
  return errors;
}

// Addresses: servers advertise their stable name through the headless
// Service; every coordinator address is a Service in front of the coordinator.
function checkAddresses({ objects, kustomization }) {
  const errors = [];
  const configMaps = configMapsOf(objects);
  const services = objects.filter((o) => o.obj?.kind === "Service");
  const templates = podTemplates(objects);
  const coordinators = templates.filter((t) => t.containers.some((c) => (c.command ?? [])[0] === "pando-coordinator"));
  const isCoordinatorAddress = (address) => {
    const [host, port] = String(address).split(":");
    const svc = services.find((s) => [s.obj.metadata?.name, `${s.obj.metadata?.name}.${kustomization.namespace}.svc`].includes(host));
    return svc && (svc.obj.spec?.ports ?? []).some((p) => p.port === Number(port)) &&
      coordinators.some((t) => selects({ matchLabels: svc.obj.spec?.selector ?? {} }, t.labels));
  };
  for (const t of templates) {
    for (const c of t.containers) {
      const d = daemonSettings(t, c, configMaps);
      const coordinator = d ? d.settings.coordinator : containerEnv(c).PANDO_COORDINATOR;
      if (coordinator && !isCoordinatorAddress(coordinator))
        errors.push(`${where(t.owner)}: ${c.name}: coordinator address ${coordinator} is not a Service of the coordinator`);
      if ((c.command ?? [])[0] === "pando-ps") {
        const svcName = t.owner.obj.spec?.serviceName;
        const want = `${FAKE_FIELDS["metadata.name"]}.${svcName}.${FAKE_FIELDS["metadata.namespace"]}.svc:${portOf(d.settings.listen)}`;
        if (t.owner.obj.kind !== "StatefulSet") errors.push(`${where(t.owner)}: parameter servers must be a StatefulSet`);
        else if (d.settings.advertise !== want && d.settings.advertise !== want.replace(":", ".cluster.local:"))
          errors.push(`${where(t.owner)}: ${c.name}: advertises '${d.settings.advertise}' for pod ${FAKE_FIELDS["metadata.name"]}, not its stable name ${want}`);
      }
    }
  }
  return errors;
}

function checkImage({ objects, kustomization }) {
  const errors = [];
  const images = new Set();
  for (const t of podTemplates(objects)) for (const c of t.containers) images.add(c.image);
  if (images.size !== 1) errors.push(`containers use ${images.size} images: ${[...images].join(", ")}`);
  const image = [...images][0] ?? "";
  const name = image.replace(/[:@][^/]*$/, "");
  const entries = kustomization?.images ?? [];
  if (entries.length !== 1 || entries[0].name !== name)
    errors.push(`kustomization.yaml's images: must have one entry named '${name}' (the containers' image)`);
  else if (`${entries[0].newName ?? name}:${entries[0].newTag ?? "latest"}` !== image)
    errors.push(`kustomization.yaml's images: turns ${image} into another image by default`);
  return errors;
}

function checkReferences({ objects }) {
  const errors = [];
  const configMaps = configMapsOf(objects);
  const used = new Set();
  for (const t of podTemplates(objects)) {
    const volumes = new Map((t.spec.volumes ?? []).map((v) => [v.name, v]));
    for (const v of t.owner.obj.spec?.volumeClaimTemplates ?? []) volumes.set(v.metadata?.name, v);
    for (const v of t.spec.volumes ?? []) {
      if (!v.configMap) continue;
      const cm = configMaps.get(v.configMap.name);
      if (!cm) errors.push(`${where(t.owner)}: volume ${v.name}: no ConfigMap ${v.configMap.name}`);
      for (const item of v.configMap.items ?? [])
        if (cm && !Object.hasOwn(cm.data ?? {}, item.key)) errors.push(`${where(t.owner)}: volume ${v.name}: ConfigMap ${v.configMap.name} has no key ${item.key}`);
    }
    const mounted = new Set();
    for (const c of t.containers) {
      const problems = [];
      const env = containerEnv(c, problems);
      for (const p of problems) errors.push(`${where(t.owner)}: ${p}`);
      for (const e of c.env ?? []) {
        const f = e.valueFrom?.fieldRef?.fieldPath;
        if (f && !FIELD_PATHS.has(f) && !/^metadata\.(labels|annotations)\['.+'\]$/.test(f))
          errors.push(`${where(t.owner)}: ${c.name}: ${e.name}: fieldPath ${f} is not one the downward API offers`);
        const ref = e.valueFrom?.configMapKeyRef;
        if (ref && !Object.hasOwn(configMaps.get(ref.name)?.data ?? {}, ref.key))
          errors.push(`${where(t.owner)}: ${c.name}: ${e.name}: no key ${ref.key} in ConfigMap ${ref.name}`);
      }
      const paths = new Set();
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name)) errors.push(`${where(t.owner)}: ${c.name}: mounts volume ${m.name}, which is not defined`);
        if (paths.has(m.mountPath)) errors.push(`${where(t.owner)}: ${c.name}: two mounts at ${m.mountPath}`);
        paths.add(m.mountPath);
        mounted.add(m.name);
      }
      // files the container reads from a ConfigMap: PANDO_CONFIG, the job spec
      const files = [];
      if (env.PANDO_CONFIG) files.push(env.PANDO_CONFIG);
      const cmd = c.command ?? [];
      if (cmd[0] === "pandoctl" && cmd.includes("submit")) files.push(cmd.find((a) => /\.ya?ml$/.test(a)));
      if (DAEMONS[cmd[0]] && !env.PANDO_CONFIG) errors.push(`${where(t.owner)}: ${c.name}: no PANDO_CONFIG`);
      for (const f of files) {
        const file = f && configFile(t, c, f, configMaps);
        if (!file) errors.push(`${where(t.owner)}: ${c.name}: ${f} is not a file of a mounted ConfigMap`);
        else used.add(`${file.cm.metadata.name}/${file.key}`);
      }
    }
    for (const [name, v] of volumes)
      if (!mounted.has(name)) errors.push(`${where(t.owner)}: volume ${name} is mounted by no container`);
    if (t.owner.obj.kind === "StatefulSet") {
      const svc = objects.find((o) => o.obj?.kind === "Service" && o.obj.metadata?.name === t.owner.obj.spec?.serviceName);
      if (!svc) errors.push(`${where(t.owner)}: serviceName ${t.owner.obj.spec?.serviceName} is not a Service`);
      else if (svc.obj.spec?.clusterIP !== "None") errors.push(`${where(t.owner)}: Service ${svc.obj.metadata.name} is not headless (clusterIP: None)`);
      else if (!selects({ matchLabels: svc.obj.spec?.selector ?? {} }, t.labels)) errors.push(`${where(t.owner)}: its headless Service does not select its pods`);
    }
  }
  for (const [name, cm] of configMaps)
    for (const key of Object.keys(cm.data ?? {}))
      if (!used.has(`${name}/${key}`)) errors.push(`ConfigMap ${name}: key ${key} is read by no container`);
  return errors;
}

function checkSecurity({ objects }) {
  const errors = [];
  for (const t of podTemplates(objects)) {
    const pod = t.spec.securityContext ?? {};
    for (const c of t.containers) {
      const sc = c.securityContext ?? {};
      const at = `${where(t.owner)}: ${c.name}`;
      if (!(sc.runAsNonRoot ?? pod.runAsNonRoot)) errors.push(`${at}: runAsNonRoot is not true`);
      const uid = sc.runAsUser ?? pod.runAsUser;
      if (uid === undefined || uid === 0) errors.push(`${at}: runAsUser is not a non-root uid`);
      if (sc.readOnlyRootFilesystem !== true) errors.push(`${at}: readOnlyRootFilesystem is not true`);
      if (sc.allowPrivilegeEscalation !== false) errors.push(`${at}: allowPrivilegeEscalation is not false`);
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) errors.push(`${at}: capabilities do not drop ALL`);
      for (const kind of ["requests", "limits"])
        for (const r of ["cpu", "memory"])
          if (c.resources?.[kind]?.[r] === undefined) errors.push(`${at}: no resources.${kind}.${r}`);
      if (DAEMONS[(c.command ?? [])[0]])
        for (const probe of ["readinessProbe", "livenessProbe"])
          if (probeTarget(c[probe]) === undefined) errors.push(`${at}: no exec probe pandoctl health 127.0.0.1:PORT as ${probe}`);
    }
  }
  return errors;
}

// TLS and the token from the kustomization's Secrets: every Pando container
// mounts its role's Secret read-only; a daemon's tls_cert, tls_key, tls_ca and
// token_file (pandoctl's PANDO_CA, PANDO_CERT, PANDO_KEY, PANDO_TOKEN_FILE) are
// keys of it; client certificates are required; the probes pass the same files;
// no key material is committed (k8s/secrets/ is git-ignored).
const SECRET_DIR = "/run/secrets/pando";
function checkSecrets({ objects, kustomization, gitignore, keyFiles }) {
  const errors = [];
  const configMaps = configMapsOf(objects);
  const generated = new Map((kustomization?.secretGenerator ?? []).map((g) =>
    [g.name, new Set((g.files ?? []).map((f) => String(f).split("=")[0]))]));
  for (const t of podTemplates(objects)) {
    for (const c of t.containers) {
      const cmd = c.command ?? [];
      const d = daemonSettings(t, c, configMaps);
      const usesCtl = cmd[0] === "pandoctl" || (cmd[0] === "sh" && cmd.join(" ").includes("pandoctl"));
      if (!d && !usesCtl) continue;
      const at = `${where(t.owner)}: ${c.name}`;
      const m = (c.volumeMounts ?? []).find((v) => v.mountPath === SECRET_DIR);
      const vol = m && (t.spec.volumes ?? []).find((v) => v.name === m.name);
      if (!m || !vol?.secret) { errors.push(`${at}: mounts no Secret at ${SECRET_DIR}`); continue; }
      if (m.readOnly !== true) errors.push(`${at}: the Secret at ${SECRET_DIR} is not mounted readOnly`);
      const keys = generated.get(vol.secret.secretName);
      if (!keys) { errors.push(`${at}: Secret ${vol.secret.secretName} is not made by the kustomization's secretGenerator`); continue; }
      const env = containerEnv(c);
      const files = d
        ? { tls_cert: d.settings.tls_cert, tls_key: d.settings.tls_key, tls_ca: d.settings.tls_ca, token_file: d.settings.token_file }
        : { PANDO_CERT: env.PANDO_CERT, PANDO_KEY: env.PANDO_KEY, PANDO_CA: env.PANDO_CA, PANDO_TOKEN_FILE: env.PANDO_TOKEN_FILE };
      for (const [k, f] of Object.entries(files)) {
        if (!f) errors.push(`${at}: no ${k}`);
        else if (!String(f).startsWith(SECRET_DIR + "/") || !keys.has(String(f).slice(SECRET_DIR.length + 1)))
          errors.push(`${at}: ${k} ${f} is not a file of its Secret ${vol.secret.secretName}`);
      }
      if (!d) continue;
      if (d.settings.tls_client_auth !== "require") errors.push(`${at}: tls_client_auth is not require`);
      for (const probe of ["readinessProbe", "livenessProbe"]) {
        const pc = c[probe]?.exec?.command;
        const want = { "--ca": d.settings.tls_ca, "--cert": d.settings.tls_cert, "--key": d.settings.tls_key, "--token-file": d.settings.token_file };
        for (const [flag, f] of Object.entries(want))
          if (flagOf(pc, flag) !== f) errors.push(`${at}: ${probe}: ${flag} is not ${f}`);
      }
    }
  }
  if (!(gitignore ?? "").split("\n").some((l) => ["/k8s/secrets/", "k8s/secrets/", "/k8s/secrets"].includes(l.trim())))
    errors.push(".gitignore does not ignore k8s/secrets/");
  for (const f of keyFiles ?? []) errors.push(`${f}: key material is committed`);
  return errors;
}

function checkExampleJob({ objects, example }) {
  const configMaps = configMapsOf(objects);
  const want = JSON.stringify(parse(example));
  for (const cm of configMaps.values())
    for (const [key, text] of Object.entries(cm.data ?? {}))
      if (key === "fashion-mlp.yaml") return JSON.stringify(parse(text)) === want ? [] : [`ConfigMap ${cm.metadata.name}: ${key} differs from examples/fashion-mlp.yaml`];
  return ["no ConfigMap has the example job fashion-mlp.yaml"];
}

// Runs each daemon with its ConfigMap file and variables and --check-config.
function checkDaemonConfigs({ objects }) {
  const errors = [];
  const configMaps = configMapsOf(objects);
  const dir = mkdtempSync(join(tmpdir(), "pando-k8s-"));
  // throw-away certificates and token in place of the Secrets' files
  const certs = join(dir, "secrets");
  const local = (s) => String(s).split(SECRET_DIR + "/").join(certs + "/");
  try {
    const made = spawnSync("sh", [join(ROOT, "tools", "certs.sh"), certs], { encoding: "utf8" });
    if (made.status !== 0) return [`tools/certs.sh: ${(made.stderr || made.error?.message || "").trim()}`];
    for (const t of podTemplates(objects)) {
      for (const c of t.containers) {
        const d = daemonSettings(t, c, configMaps);
        if (!d) continue;
        const env = { PATH: process.env.PATH };
        for (const k of ["ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"])
          if (process.env[k] !== undefined) env[k] = process.env[k];
        for (const [k, v] of Object.entries(d.env)) if (k.startsWith("PANDO_")) env[k] = local(v);
        if (d.file) {
          env.PANDO_CONFIG = join(dir, d.file.key);
          writeFileSync(env.PANDO_CONFIG, local(d.file.text));
        }
        const r = spawnSync(join(BIN, c.command[0]), ["--check-config"], { env, encoding: "utf8" });
        if (r.status !== 0)
          errors.push(`${where(t.owner)}: ${c.name}: ${c.command[0]} --check-config: ${(r.stderr || r.error?.message || "").trim()}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return errors;
}

// Prometheus's kubernetes_sd_configs (role pod) in each namespace it names
// needs get, list and watch on pods, endpoints and services, granted to the
// ServiceAccount of rbac-k8s.yaml by a (Cluster)Role and a binding there.
const SD_RESOURCES = ["pods", "endpoints", "services"];
const SD_VERBS = ["get", "list", "watch"];
function checkPrometheusRbac({ monitoring, prometheus }) {
  const errors = [];
  const of = (kind) => monitoring.filter((o) => o.obj?.kind === kind).map((o) => o.obj);
  const accounts = of("ServiceAccount");
  if (accounts.length !== 1) return [`${RBAC_FILE}: must have one ServiceAccount, has ${accounts.length}`];
  const sa = accounts[0];
  const namespaces = new Set();
  for (const job of prometheus?.scrape_configs ?? [])
    for (const sd of job.kubernetes_sd_configs ?? []) for (const n of sd.namespaces?.names ?? []) namespaces.add(n);
  if (namespaces.size === 0) errors.push("prometheus-k8s.yml: no kubernetes_sd_configs namespaces");
  const roles = [...of("Role"), ...of("ClusterRole")];
  const grants = (role) =>
    SD_RESOURCES.every((r) => SD_VERBS.every((v) => (role.rules ?? []).some((rule) =>
      (rule.apiGroups ?? []).includes("") && ((rule.resources ?? []).includes(r) || (rule.resources ?? []).includes("*")) &&
      ((rule.verbs ?? []).includes(v) || (rule.verbs ?? []).includes("*")))));
  for (const ns of namespaces) {
    const bound = [...of("RoleBinding").filter((b) => b.metadata?.namespace === ns), ...of("ClusterRoleBinding")].filter((b) =>
      (b.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === sa.metadata?.name && s.namespace === sa.metadata?.namespace));
    const ok = bound.some((b) => {
      const role = roles.find((r) => r.kind === b.roleRef?.kind && r.metadata?.name === b.roleRef?.name &&
        (r.kind === "ClusterRole" || r.metadata?.namespace === ns));
      return b.roleRef?.apiGroup === "rbac.authorization.k8s.io" && role && grants(role);
    });
    if (!ok)
      errors.push(`namespace ${ns}: no binding gives ServiceAccount ${sa.metadata?.namespace}/${sa.metadata?.name} ${SD_VERBS.join(", ")} on ${SD_RESOURCES.join(", ")}`);
  }
  for (const o of monitoring)
    if (!isSubdomain(o.obj?.metadata?.name)) errors.push(`${where(o)}: name is not DNS-1123`);
  return errors;
}

const CHECKS = [
  ["kustomization.yaml lists every file of k8s/, and only those", checkKustomization],
  ["names are DNS-1123 (objects, containers, volumes), ports IANA names, labels valid", checkNames],
  ["every object is in the kustomization's namespace, which the Namespace object creates", checkNamespace],
  ["selectors match pod template labels (workloads, Services, PDB, NetworkPolicy, spread)", checkSelectors],
  ["ports: Services' targetPorts, probes, NetworkPolicy ports, the daemons' listen and metrics ports are container ports", checkPorts],
  ["addresses: servers advertise POD.SERVICE.NAMESPACE.svc, coordinator addresses are its Service", checkAddresses],
  ["the same image everywhere, named in kustomization.yaml's images:", checkImage],
  ["references: ConfigMaps and keys, volumes and mounts, PANDO_CONFIG, $(VAR), headless serviceName", checkReferences],
  ["security: non-root, read-only root fs, no privilege escalation, caps dropped, requests and limits, grpc probes", checkSecurity],
  ["secrets: every Pando container mounts its Secret read-only, its settings and probes name its files, no keys in git", checkSecrets],
  ["the ConfigMap's fashion-mlp.yaml is examples/fashion-mlp.yaml", checkExampleJob],
  ["prometheus RBAC: its ServiceAccount may get, list and watch pods, endpoints and services where it discovers", checkPrometheusRbac],
];

async function runChecks(model) {
  const results = [];
  for (const o of [...model.objects, ...model.monitoring])
    results.push([`schema: ${where(o)} (unknown fields rejected)`, await checkSchema(o)]);
  for (const [name, fn] of CHECKS) results.push([name, fn(model)]);
  return results;
}

// ---------------------------------------------------------------- self-test

const find = (model, kind, name) => model.objects.find((o) => o.obj.kind === kind && o.obj.metadata.name === name).obj;
const container = (model, kind, name) => find(model, kind, name).spec.template.spec.containers[0];
// Each fault, applied to a copy, must fail the check whose name starts with `check`.
const FAULTS = [
  ["an unknown field", "schema:", (m) => { container(m, "StatefulSet", "pando-ps").imagePullPolice = "Always"; }],
  ["a misspelt field in metadata", "schema:", (m) => { find(m, "Deployment", "pando-worker").metadata.label = {}; }],
  ["a wrong type", "schema:", (m) => { find(m, "Deployment", "pando-worker").spec.replicas = "2"; }],
  ["a bad quantity", "schema:", (m) => { container(m, "Deployment", "pando-worker").resources.limits.memory = "1 GB"; }],
  ["a missing required field", "schema:", (m) => { delete container(m, "Deployment", "pando-coordinator").name; }],
  ["a file missing from kustomization.yaml", "kustomization", (m) => { m.kustomization.resources.pop(); }],
  ["an upper-case name", "names", (m) => { find(m, "Deployment", "pando-worker").metadata.name = "Pando-Worker"; }],
  ["an object in another namespace", "every object", (m) => { find(m, "ConfigMap", "pando-config").metadata.namespace = "default"; }],
  ["a selector that misses its pods", "selectors", (m) => { find(m, "StatefulSet", "pando-ps").spec.template.metadata.labels["app.kubernetes.io/component"] = "server"; }],
  ["a Service port that is not a container port", "ports", (m) => { find(m, "Service", "pando-coordinator").spec.ports[0].targetPort = 7071; }],
  ["a probe on the wrong port", "ports", (m) => { container(m, "StatefulSet", "pando-ps").readinessProbe.exec.command.splice(-1, 1, "127.0.0.1:7001"); }],
  ["a daemon without the Secret mounted", "secrets", (m) => { const c = container(m, "StatefulSet", "pando-ps"); c.volumeMounts = c.volumeMounts.filter((v) => v.mountPath !== SECRET_DIR); }],
  ["a Secret mounted writable", "secrets", (m) => { container(m, "Deployment", "pando-worker").volumeMounts.find((v) => v.mountPath === SECRET_DIR).readOnly = false; }],
  ["a config naming a file the Secret lacks", "secrets", (m) => { const cm = find(m, "ConfigMap", "pando-config"); cm.data["ps.yaml"] = cm.data["ps.yaml"].replace("ps.key", "server.key"); }],
  ["a daemon without the token", "secrets", (m) => { const cm = find(m, "ConfigMap", "pando-config"); cm.data["coordinator.yaml"] = cm.data["coordinator.yaml"].replace(/\n *token_file:.*/, ""); }],
  ["a probe without the client certificate", "secrets", (m) => { const c = container(m, "Deployment", "pando-coordinator").livenessProbe.exec.command; c.splice(c.indexOf("--cert"), 2); }],
  ["pandoctl of the Job without the CA", "secrets", (m) => { const c = container(m, "Job", "pando-submit"); c.env = c.env.filter((e) => e.name !== "PANDO_CA"); }],
  ["k8s/secrets/ not git-ignored", "secrets", (m) => { m.gitignore = ""; }],
  ["a committed key", "secrets", (m) => { m.keyFiles = ["k8s/secrets/ps.key"]; }],
  ["a listen port that is not a container port", "ports", (m) => { find(m, "ConfigMap", "pando-config").data["ps.yaml"] = "listen: 0.0.0.0:7001\ncoordinator: pando-coordinator:7070\n"; }],
  ["a metrics port that is not a container port", "ports", (m) => { const cm = find(m, "ConfigMap", "pando-config"); cm.data["coordinator.yaml"] = cm.data["coordinator.yaml"].replace("9070", "9071"); }],
  ["a worker without a fixed health port", "ports", (m) => { find(m, "ConfigMap", "pando-config").data["worker.yaml"] = "coordinator: pando-coordinator:7070\n"; }],
  ["a server advertising an address that is not its stable name", "addresses", (m) => { container(m, "StatefulSet", "pando-ps").env.find((e) => e.name === "PANDO_ADVERTISE").value = "10.0.0.1:7000"; }],
  ["a wrong coordinator address", "addresses", (m) => { container(m, "Job", "pando-submit").env[0].value = "coordinator:7070"; }],
  ["another image", "the same image", (m) => { container(m, "Deployment", "pando-worker").image = "pando:v2"; }],
  ["an undefined $(VAR)", "references", (m) => { container(m, "Deployment", "pando-worker").env.find((e) => e.name === "PANDO_NAME").value = "$(POD_NAM)"; }],
  ["a missing ConfigMap", "references", (m) => { find(m, "Deployment", "pando-worker").spec.template.spec.volumes.find((v) => v.configMap).configMap.name = "pando-conf"; }],
  ["a writable root file system", "security", (m) => { container(m, "Deployment", "pando-worker").securityContext.readOnlyRootFilesystem = false; }],
  ["a missing memory limit", "security", (m) => { delete container(m, "Deployment", "pando-coordinator").resources.limits.memory; }],
  ["a Role without watch", "prometheus RBAC", (m) => { m.monitoring.find((o) => o.obj.kind === "Role").obj.rules[0].verbs = ["get", "list"]; }],
  ["a Role without endpoints", "prometheus RBAC", (m) => { m.monitoring.find((o) => o.obj.kind === "Role").obj.rules[0].resources = ["pods", "services"]; }],
  ["a binding to another ServiceAccount", "prometheus RBAC", (m) => { m.monitoring.find((o) => o.obj.kind === "RoleBinding").obj.subjects[0].namespace = "default"; }],
  ["a Role in another namespace", "prometheus RBAC", (m) => { m.monitoring.find((o) => o.obj.kind === "Role").obj.metadata.namespace = "default"; }],
  ["an unknown field in the RoleBinding", "schema:", (m) => { m.monitoring.find((o) => o.obj.kind === "RoleBinding").obj.roleRef.namespace = "pando"; }],
  ["a job that differs from the example", "the ConfigMap's", (m) => { const cm = find(m, "ConfigMap", "pando-config"); cm.data["fashion-mlp.yaml"] = cm.data["fashion-mlp.yaml"].replace("epochs: 3", "epochs: 1"); }],
];

async function selfTest(model) {
  const results = [];
  for (const [what, check, inject] of FAULTS) {
    const copy = structuredClone(model);
    let failed;
    try {
      inject(copy);
      failed = (await runChecks(copy)).filter(([name, errors]) => name.startsWith(check) && errors.length > 0);
    } catch (e) {
      failed = [];
      results.push([`self-test: ${what} is caught`, [`injecting it threw ${e.message}`]]);
      continue;
    }
    results.push([`self-test: ${what} is caught by the '${check}' check`, failed.length ? [] : ["not caught"]]);
  }
  return results;
}

// ---------------------------------------------------------------- main

let model;
let results;
try {
  model = load();
  results = await runChecks(model);
} catch (e) {
  console.log(`FAIL - reading k8s/: ${e.message}`);
  process.exit(1);
}
if (BIN && existsSync(join(BIN, "pando-ps")))
  results.push(["the daemons accept their ConfigMap settings and variables (--check-config)", checkDaemonConfigs(model)]);
else
  results.push(["skipped: --check-config of the ConfigMap settings (no binaries; run make first)", []]);
results.push(...(await selfTest(model)));
let failed = 0;
for (const [name, errors] of results) {
  if (errors.length === 0) {
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`FAIL - ${name}`);
    for (const e of errors) console.log(`#   ${e}`);
  }
}
process.exit(failed ? 1 : 0);
