"""The workflow's configuration check (a helper of the workflow, not part of the library).

`check_config(cfg)` checks every value that could make a job fail, before any job starts,
with the schema (workflow/schemas/config.schema.yaml, whose defaults it fills in) and the
cross-key checks the schema cannot express. workflow/rules/common.smk calls it; it needs no
Snakemake, so tests call it directly. A bad value raises ConfigError with a one-line message:

    Invalid configuration: <key>: <value> <problem>; allowed: <what is allowed>

YAML 1.1 (PyYAML, as Snakemake reads configs) reads `1e-5` and `1.5e4` as strings: where a
number is expected, and in the free-form option mappings, such strings become floats.
"""

from __future__ import annotations

import copy
import math
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

MODELS = ["ae", "gfe_amd", "gfe_amd_per_sample", "gfe_rk4", "gfe_2nd", "gfe_adjoint", "gfe_lbfgs"]
EXPERIMENTS = ["e1", "e1c", "e2", "e3", "e4"]  # e1c: continuations of E1 runs
DATASETS = ["mnist", "fashion_mnist", "cifar10"]
OFFICIAL_TRAIN = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
OFFICIAL_TEST = 10000
# What each dataset's decoder outputs (gfe.models.build_decoder: an MLP of logits for 28x28
# images, a conv net of probabilities for CIFAR-10) and the loss that reads that output.
DECODER_OUTPUT = {"mnist": "logits", "fashion_mnist": "logits", "cifar10": "probabilities"}
LOSS_FOR_OUTPUT = {"logits": "bce", "probabilities": "mse"}
# E5 encodes each E3 model and each E2 GFE model with its own flow (src/scripts/encoding_convergence.py).
E5_SOLVERS = ["rk4", "amd"]
# A number in exponent notation that YAML 1.1 leaves a string: 1e-5, 1.5e4, .5E+3.
EXPONENT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")
# Numbers and booleans as strings: how Snakemake passes the values of a nested --config.
PLAIN_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")
BOOLEANS = {"true": True, "false": False}
# Lists of model names: (section or None for the top level, key).
MODEL_LISTS = [
    (None, "models"),
    ("learning_curves", "models"),
    ("learning_curves", "extra_models"),
    ("solver_comparison", "models"),
    ("solver_comparison", "heldout_encoder"),
    ("adjoint_ablation", "models"),
    ("encoding_convergence", "common_model"),
]


class ConfigError(ValueError):
    """A configuration value that would make a job fail; the message names key, value and what is allowed."""


def check_config(cfg: dict, *, check_encode_options: bool = True) -> dict:
    """Check `cfg` (as loaded from YAML, changed in place: exponent strings become numbers,
    the schema's defaults are filled in) and return it; raise ConfigError at the first bad
    value. check_encode_options=False skips the check of each GFE model's encode options
    by the library (`gfe.check_gradient_options`), whose import takes seconds."""
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"Invalid configuration: {cfg!r} is not a mapping; allowed: a mapping of the keys in {SCHEMA_PATH.name}"
        )
    schema = load_schema()
    _check_top_level_keys(cfg, schema)
    convert_numbers(cfg, schema)
    _check_finite(cfg)
    _check_model_and_dataset_names(cfg)
    _check_schema(cfg, schema)
    _check_name(cfg)
    _check_datasets(cfg)
    _check_models(cfg)
    _check_seeds(cfg)
    _check_train_sizes(cfg)
    _check_batch_sizes(cfg)
    _check_e5_and_e7(cfg)
    if check_encode_options:
        _check_encode_options(cfg)
    _check_claim_models(cfg)  # after the options themselves: a bad option is named as such
    return cfg


def check_owner(cfg: dict, owner_file: str | Path) -> None:
    """Raise ConfigError when `cfg` takes the name of the project config `owner_file` (e.g.
    config/config.yaml, 'default', whose results are committed) with other settings: its runs
    would write over that config's results. `cfg` must have passed check_config."""
    owner_file = Path(owner_file)
    owner = yaml.safe_load(owner_file.read_text())
    if cfg["name"] != owner.get("name"):
        return
    owner = check_config(owner, check_encode_options=False)
    differences = _differences(owner, cfg)
    if differences:
        shown = "; ".join(f"{key}: {mine!r} (not {theirs!r})" for key, theirs, mine in differences[:3])
        more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
        _fail(
            "name",
            cfg["name"],
            f"is the name of config/{owner_file.name}, whose results/{cfg['name']}/ is the project's reference, "
            f"but these settings differ from it ({shown}{more}), so its runs would write over them",
            "another name for other settings, e.g. --config name=mine",
        )


def _differences(reference, other, prefix: str = "") -> list[tuple[str, object, object]]:
    """(key, reference value, other value) wherever two nested configs differ."""
    if isinstance(reference, dict) and isinstance(other, dict):
        found = []
        for key in sorted(set(reference) | set(other), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            found += _differences(reference.get(key), other.get(key), path)
        return found
    return [] if reference == other else [(prefix, reference, other)]


def n_train(cfg: dict, dataset: str) -> int:
    """Images of a dataset's training split (the N of 'full')."""
    s = cfg["dataset_settings"][dataset]
    return s["n_pool"] - s["n_val"]


def models_in_use(cfg: dict) -> list[str]:
    lc = cfg["learning_curves"]
    used = set(cfg["models"]) | set(lc["models"]) | set(lc["extra_models"])
    used |= set(cfg["solver_comparison"]["models"]) | set(cfg["adjoint_ablation"]["models"])
    used.add(cfg["solver_comparison"]["heldout_encoder"])
    return sorted(used)


# ------------------------------------------------------------------------------ helpers


def _fail(key: str, value, problem: str, allowed) -> None:
    raise ConfigError(f"Invalid configuration: {key}: {value!r} {problem}; allowed: {allowed}")


def _key(path) -> str:
    """['train_sizes', 0] -> 'train_sizes[0]'; ['training', 'val_every'] -> 'training.val_every'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the whole configuration)"


def _size(cfg: dict, dataset: str, n) -> int:
    return n_train(cfg, dataset) if n == "full" else n


def _shown(n, size: int) -> str:
    return f"N='full' = {size} images" if n == "full" else f"N={n}"


@lru_cache(maxsize=None)
def _schema_text(path: str) -> str:
    return Path(path).read_text()


def load_schema() -> dict:
    return yaml.safe_load(_schema_text(str(SCHEMA_PATH)))


def _resolve(schema: dict, root: dict) -> dict:
    """Follow local `$ref`s (#/definitions/...)."""
    while isinstance(schema, dict) and "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


# ------------------------------------------------------------------------------ numbers


def _number(text: str, integer_only: bool):
    value = float(text)
    return int(value) if integer_only and value.is_integer() else value


def _types(schema: dict, root: dict) -> set:
    schema = _resolve(schema, root)
    types = schema.get("type", [])
    found = set([types] if isinstance(types, str) else types)
    for alternative in schema.get("oneOf", []) + schema.get("anyOf", []):
        found |= _types(alternative, root)
    return found


def _free_string(schema: dict, root: dict) -> bool:
    """Whether the schema allows any string (not only the names of an enum)."""
    schema = _resolve(schema, root)
    if "string" in ([schema["type"]] if isinstance(schema.get("type"), str) else schema.get("type", [])):
        if "enum" not in schema:
            return True
    return any(_free_string(alt, root) for alt in schema.get("oneOf", []) + schema.get("anyOf", []))


def _child(schema: dict, key: str, root: dict) -> dict | None:
    """The schema of `key` in a mapping described by `schema`; None for a free-form mapping."""
    schema = _resolve(schema, root)
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            return sub
    extra = schema.get("additionalProperties", True)
    if isinstance(extra, dict):
        return extra
    if extra is True and not schema.get("properties") and not schema.get("patternProperties"):
        return None
    return {}  # a key the schema will reject: left as it is


def _convert_free(value):
    """Inside a free-form option mapping: every exponent string becomes a float (YAML 1.2's
    reading), and a number or boolean given as a string (Snakemake passes the values of a nested
    `--config key={a: {b: 5}}` so) the number or boolean."""
    if isinstance(value, dict):
        return {k: _convert_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert_free(v) for v in value]
    if isinstance(value, str) and EXPONENT.match(value):
        return float(value)
    if isinstance(value, str) and PLAIN_NUMBER.match(value):
        return int(value) if re.fullmatch(r"[-+]?\d+", value) else float(value)
    if isinstance(value, str) and value.lower() in BOOLEANS:
        return BOOLEANS[value.lower()]
    return value


def convert_numbers(node, schema: dict, root: dict | None = None):
    """Exponent strings where the schema expects a number become floats (ints where it expects
    only an integer and the value is one: 1e4 -> 10000); in free-form mappings, floats."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if isinstance(node, dict):
        for key, value in node.items():
            sub = _child(schema, key, root)
            node[key] = _convert_free(value) if sub is None else convert_numbers(value, sub, root)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            node[i] = convert_numbers(value, schema.get("items", {}), root)
    elif isinstance(node, str) and (EXPONENT.match(node) or PLAIN_NUMBER.match(node)):
        types = _types(schema, root)
        if types & {"number", "integer"} and (EXPONENT.match(node) or not _free_string(schema, root)):
            return _number(node, integer_only="number" not in types)
    elif isinstance(node, str) and node.lower() in BOOLEANS and _types(schema, root) == {"boolean"}:
        return BOOLEANS[node.lower()]
    return node


def _check_finite(node, path=()) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, (*path, i))
    elif isinstance(node, float) and not math.isfinite(node):
        _fail(_key(path), node, "is not a finite number", "a finite number (no .nan, .inf)")


# ------------------------------------------------------------------------------ schema


def _describe(schema: dict, root: dict) -> str:
    """What a schema allows, in words: 'an integer >= 1 or 'full'', 'a non-empty list, each ...'."""
    schema = _resolve(schema, root)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return " or ".join(_describe(s, root) for s in alternatives)
    if "enum" in schema:
        values = schema["enum"]
        return repr(values[0]) if len(values) == 1 else f"one of {values}"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_describe({**schema, "type": k}, root) for k in kind)
    if kind in ("integer", "number"):
        return _describe_number(schema)
    if kind == "array":
        each = _describe(schema.get("items", {}), root)
        unique = ", no repeats" if schema.get("uniqueItems") else ""
        return f"a {'non-empty ' if schema.get('minItems') else ''}list{unique}, each {each}"
    if kind == "object":
        if schema.get("properties"):
            keys, required = list(schema["properties"]), schema.get("required", [])
            return f"a mapping with keys {keys} ({'all' if required == keys else required} required)"
        if schema.get("patternProperties"):
            return f"a mapping with keys matching {list(schema['patternProperties'])}"
        extra = schema.get("additionalProperties")
        return f"a mapping of names to {_describe(extra, root)}" if isinstance(extra, dict) else "a mapping"
    if kind == "string":
        return f"a string matching {schema['pattern']}" if "pattern" in schema else "a string"
    return {"boolean": "true or false", "null": "null"}.get(kind, "see the schema")


def _describe_number(schema: dict) -> str:
    noun = "an integer" if schema["type"] == "integer" else "a finite number"
    low = ("[", schema["minimum"]) if "minimum" in schema else ("(", schema.get("exclusiveMinimum"))
    high = ("]", schema["maximum"]) if "maximum" in schema else (")", schema.get("exclusiveMaximum"))
    if low[1] is not None and high[1] is not None:
        return f"{noun} in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low[1] is not None:
        return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1]}"
    if high[1] is not None:
        return f"{noun} {'<=' if high[0] == ']' else '<'} {high[1]}"
    return noun


def _validator(schema: dict):
    """A validator that also fills in the schema's defaults (jsonschema's recipe)."""
    base = jsonschema.validators.validator_for(schema)
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})(schema)


def _check_schema(cfg: dict, schema: dict) -> None:
    errors = list(_validator(schema).iter_errors(cfg))
    if not errors:
        return
    error = max(errors, key=jsonschema.exceptions.by_relevance())
    allowed = _describe(error.schema, schema)
    if error.validator == "pattern" and error.schema.get("description"):
        allowed += f" ({error.schema['description']})"
    message = (
        f"{error.instance!r} is empty" if error.validator == "minItems" and error.instance == [] else error.message
    )
    raise ConfigError(f"Invalid configuration: {_key(error.absolute_path)}: {message}; allowed: {allowed}")


# ------------------------------------------------------------------------------ names


def _check_top_level_keys(cfg: dict, schema: dict) -> None:
    allowed = list(schema["properties"])
    unknown = sorted(set(cfg) - set(allowed), key=str)
    if unknown:
        others = f" (unknown keys: {unknown})" if len(unknown) > 1 else ""
        _fail(
            unknown[0],
            cfg[unknown[0]],
            f"is set, but {unknown[0]!r} is not a key of the configuration{others}",
            f"the top-level keys {allowed}",
        )


def _check_model_and_dataset_names(cfg: dict) -> None:
    """Clearer than the schema's message: every unknown name at once, and the known ones."""
    lists = [("datasets", cfg.get("datasets"), DATASETS)]
    for section, key in MODEL_LISTS:
        mapping = cfg if section is None else cfg.get(section)
        values = mapping.get(key) if isinstance(mapping, dict) else None
        lists.append((key if section is None else f"{section}.{key}", values, MODELS))
    for key, values, names in lists:
        values = [values] if isinstance(values, str) else values
        if isinstance(values, list):
            bad = [v for v in values if v not in names]
            if bad:
                what = "dataset" if names is DATASETS else "model"
                _fail(key, values if len(values) > 1 else values[0], f"names unknown {what}(s) {bad}", names)


# ------------------------------------------------------------------------------ semantics


def _check_datasets(cfg: dict) -> None:
    settings = cfg["dataset_settings"]
    for ds in cfg["datasets"]:
        if ds not in settings:
            _fail(
                "datasets",
                cfg["datasets"],
                f"lists {ds!r}, which has no entry in dataset_settings",
                f"datasets with an entry in dataset_settings: {sorted(settings)}",
            )
    for ds, s in settings.items():
        if s["n_pool"] > OFFICIAL_TRAIN[ds]:
            _fail(
                f"dataset_settings.{ds}.n_pool",
                s["n_pool"],
                f"is larger than the {OFFICIAL_TRAIN[ds]} official training images",
                f"2..{OFFICIAL_TRAIN[ds]}",
            )
        output = DECODER_OUTPUT[ds]
        if s["loss"] != LOSS_FOR_OUTPUT[output]:
            _fail(
                f"dataset_settings.{ds}.loss",
                s["loss"],
                f"does not read what the {ds} decoder outputs ({output})",
                repr(LOSS_FOR_OUTPUT[output]),
            )
        if s["optimizer"]["name"] == "adam" and "alpha" in s["optimizer"]:
            _fail(
                f"dataset_settings.{ds}.optimizer.alpha",
                s["optimizer"]["alpha"],
                "is RMSprop's smoothing constant, which Adam does not take",
                "no alpha with name: adam (or name: rmsprop)",
            )
        if not s["n_val"] < s["n_pool"]:
            _fail(
                f"dataset_settings.{ds}.n_val",
                s["n_val"],
                f"is not smaller than n_pool ({s['n_pool']})",
                f"1..{s['n_pool'] - 1}",
            )
    test_size = cfg["evaluation"]["test_size"]
    if test_size > OFFICIAL_TEST:
        _fail("evaluation.test_size", test_size, "is larger than the official test set", f"2..{OFFICIAL_TEST}")


def _check_models(cfg: dict) -> None:
    settings = cfg["model_settings"]
    for model in models_in_use(cfg):
        if model not in settings:
            _fail(
                "model_settings",
                sorted(settings),
                f"has no entry for model {model!r} (named in an experiment)",
                f"an entry for every model named: {models_in_use(cfg)}",
            )
        missing = [k for k in ("gradient", "solver", "tau") if k not in settings[model]]
        if settings[model]["kind"] == "gfe" and missing:
            _fail(
                f"model_settings.{model}",
                settings[model],
                f"(kind gfe) lacks {missing}",
                "a GFE model with gradient, solver and tau",
            )
    max_steps = cfg["training"]["max_steps"]
    missing = [m for m in cfg["models"] if m not in max_steps]
    if missing:
        _fail(
            "training.max_steps",
            max_steps,
            f"has no step cap for E1 model(s) {missing}",
            f"a step cap for every model of models: {cfg['models']}",
        )
    _check_max_train_sizes(cfg)
    _check_continuation(cfg)
    common = cfg["encoding_convergence"]["common_model"]
    e2 = cfg["learning_curves"]["models"]
    gfe = [m for m in e2 if settings[m]["kind"] == "gfe"]
    if common not in e2:
        _fail(
            "encoding_convergence.common_model",
            common,
            f"is not one of learning_curves.models {e2} (its E2 decoder is the common decoder)",
            f"a GFE model of learning_curves.models: {gfe}",
        )
    if settings[common]["kind"] != "gfe":
        _fail(
            "encoding_convergence.common_model",
            common,
            "is not a GFE model (kind gfe)",
            f"a GFE model of learning_curves.models: {gfe}",
        )


def _check_max_train_sizes(cfg: dict) -> None:
    """training.max_train_size names E1 models only, and leaves each at least one size."""
    for model, cap in cfg["training"].get("max_train_size", {}).items():
        key = f"training.max_train_size.{model}"
        if model not in cfg["models"]:
            _fail(key, cap, "names a model that is not one of models (E1)", f"a model of models: {cfg['models']}")
        for ds in cfg["datasets"]:
            smallest = min(_size(cfg, ds, n) for n in cfg["train_sizes"])
            if _size(cfg, ds, cap) < smallest:
                _fail(
                    key,
                    cap,
                    f"is below the smallest of train_sizes ({smallest} on {ds}), so {model} would have no E1 run",
                    f"a size >= {smallest} or 'full'",
                )


def _check_continuation(cfg: dict) -> None:
    cont = cfg["training"].get("continuation")
    if not cont:
        return
    for model in cont["models"]:
        if model not in cfg["models"]:
            _fail(
                "training.continuation.models",
                cont["models"],
                f"names {model!r}, which is not one of models (E1)",
                f"models of: {cfg['models']}",
            )
    for model in cont.get("every_size", []):
        if model not in cont["models"]:
            _fail(
                "training.continuation.every_size",
                cont["every_size"],
                f"names {model!r}, which is not one of training.continuation.models",
                f"models of: {cont['models']}",
            )
    if cont["seed"] not in cfg["seeds"]:
        _fail("training.continuation.seed", cont["seed"], "is not one of seeds (it picks E1 runs)", cfg["seeds"])


# Folders under results/ that are not a config's: the benchmark's.
RESERVED_NAMES = ["benchmarks"]


def _check_name(cfg: dict) -> None:
    if cfg["name"] in RESERVED_NAMES:
        _fail(
            "name",
            cfg["name"],
            "is reserved (results/benchmarks/ holds the benchmark's files)",
            "any other folder name",
        )


def _check_seeds(cfg: dict) -> None:
    for key in ("encoding_convergence", "latent_maps"):
        if cfg[key]["seed"] not in cfg["seeds"]:
            _fail(f"{key}.seed", cfg[key]["seed"], "is not one of seeds (it picks E2 runs)", cfg["seeds"])


def _train_sizes(cfg: dict) -> list[tuple[str, object]]:
    sizes = [(f"train_sizes[{i}]", n) for i, n in enumerate(cfg["train_sizes"])]
    return sizes + [
        (f"{s}.train_size", cfg[s]["train_size"]) for s in ("learning_curves", "solver_comparison", "adjoint_ablation")
    ]


def _check_train_sizes(cfg: dict) -> None:
    for key, n in _train_sizes(cfg):
        for ds in cfg["datasets"]:
            limit = n_train(cfg, ds)
            if n != "full" and n > limit:
                _fail(
                    key,
                    n,
                    f"is larger than the training split of {ds} ({limit} images = "
                    f"dataset_settings.{ds}.n_pool - n_val)",
                    f"1..{limit} or 'full'",
                )


def _check_batch_sizes(cfg: dict) -> None:
    """A batch is drawn from the N training images of a run: batch size <= N."""
    for ds in cfg["datasets"]:
        key, batch = f"dataset_settings.{ds}.batch_size", cfg["dataset_settings"][ds]["batch_size"]
        smallest = min(cfg["train_sizes"], key=lambda n: _size(cfg, ds, n))
        lc = cfg["learning_curves"]["train_size"]
        for what, n in (("the smallest of train_sizes (E1)", smallest), ("learning_curves.train_size (E2)", lc)):
            size = _size(cfg, ds, n)
            if batch > size:
                _fail(key, batch, f"is larger than {what}, {_shown(n, size)} on {ds}", f"1..{size}")
        for section in ("solver_comparison", "adjoint_ablation"):
            n, batch = cfg[section]["train_size"], cfg[section]["batch_size"]
            size = _size(cfg, ds, n)
            if batch > size:
                _fail(
                    f"{section}.batch_size",
                    batch,
                    f"is larger than {section}.train_size, {_shown(n, size)} on {ds}",
                    f"1..{size}",
                )


def _check_e5_and_e7(cfg: dict) -> None:
    ec, lm = cfg["encoding_convergence"], cfg["latent_maps"]
    if ec["n_images"] > cfg["evaluation"]["test_size"]:
        _fail(
            "encoding_convergence.n_images",
            ec["n_images"],
            "is larger than evaluation.test_size",
            f"2..{cfg['evaluation']['test_size']}",
        )
    settings = cfg["model_settings"]
    own = [("solver_comparison.models", m) for m in cfg["solver_comparison"]["models"]]
    own += [("learning_curves.models", m) for m in cfg["learning_curves"]["models"] if settings[m]["kind"] == "gfe"]
    for key, model in own:
        solver = settings[model].get("solver")
        if settings[model]["kind"] != "gfe" or solver not in E5_SOLVERS:
            what = f"a GFE model with solver {solver!r}" if settings[model]["kind"] == "gfe" else "an autoencoder"
            _fail(
                key, model, f"is {what}: E5 cannot encode it with its own flow", f"GFE models with solver {E5_SOLVERS}"
            )
    _check_robustness(cfg, own)
    encoder = cfg["solver_comparison"]["heldout_encoder"]
    if settings[encoder]["kind"] != "gfe":
        _fail(
            "solver_comparison.heldout_encoder",
            encoder,
            "is an autoencoder: its encoder network belongs to its own decoder",
            "a GFE model, e.g. gfe_amd",
        )
    if cfg["reconstructions"]["seed"] not in cfg["seeds"]:
        _fail(
            "reconstructions.seed",
            cfg["reconstructions"]["seed"],
            "is not one of seeds (it picks E1 runs)",
            cfg["seeds"],
        )
    if not lm["perplexity"] < lm["n_images"]:
        _fail(
            "latent_maps.perplexity",
            lm["perplexity"],
            f"is not smaller than latent_maps.n_images ({lm['n_images']})",
            f"a finite number in (0, {lm['n_images']})",
        )
    n = cfg["learning_curves"]["train_size"]
    for ds in cfg["datasets"]:
        size = _size(cfg, ds, n)
        if lm["n_images"] > size:
            _fail(
                "latent_maps.n_images",
                lm["n_images"],
                f"is larger than the E2 training set (learning_curves.train_size: {_shown(n, size)} on {ds})",
                f"5..{size}",
            )


# What each claim's models must be (src/pipeline/claims/ compares them by name): the property that
# must hold, and for a pair the one setting in which its two models differ.
CLAIM_MODELS = {
    "ae": ("claims 1a-1c", {"kind": "autoencoder"}),
    "gfe_amd": ("claims 1a-1c", {"kind": "gfe", "solver": "amd", "gradient": "approximate", "order": 1}),
}
CLAIM_PAIRS = [
    # (claim, section whose models hold the pair, first, second, the setting that differs, its two values)
    ("claim 2", "adjoint_ablation", "gfe_rk4", "gfe_adjoint", "gradient", ("approximate", "adjoint")),
    ("claim 3", "solver_comparison", "gfe_rk4", "gfe_2nd", "order", (1, 2)),
]


def _check_claim_models(cfg: dict) -> None:
    """A model a claim is judged on must be what the claim is about (e.g. gfe_amd with the
    authors' shared AMD rule; claim 2's pair alike but for the gradient), or the verdicts would
    judge other models under the claim's name."""
    settings = cfg["model_settings"]
    for model, (claims, wanted) in CLAIM_MODELS.items():
        if model not in models_in_use(cfg):
            continue
        options = {**settings[model], **settings[model].get("solver_options", {})}
        wanted = {**wanted, **({"shared": True} if model == "gfe_amd" else {})}
        wrong = {k: options.get(k) for k, v in wanted.items() if options.get(k) != v}
        if wrong:
            _fail(f"model_settings.{model}", wrong, f"is not the model {claims} are about", wanted)
    for claim, section, first, second, key, values in CLAIM_PAIRS:
        if not {first, second} <= set(cfg[section]["models"]):
            continue
        a, b = settings[first], settings[second]
        got = (a.get(key), b.get(key))
        if got != values:
            _fail(f"model_settings.{first}/{second}.{key}", got, f"is not the pair {claim} compares", values)
        others = sorted(k for k in set(a) | set(b) if k != key and a.get(k) != b.get(k))
        if others:
            _fail(
                f"model_settings.{first}/{second}",
                {k: (a.get(k), b.get(k)) for k in others},
                f"differ beyond {key}: {claim} would compare more than {key}",
                f"the same settings but {key}",
            )


def _check_robustness(cfg: dict, own: list) -> None:
    """Claim 4's sweep: decoders E5 has (its own models: [(models key, model)]), seeds each
    decoder's experiment trains, an AMD model whose settings are swept, and no more images than
    the test split holds."""
    ec = cfg["encoding_convergence"]
    rob = ec["robustness"]
    experiment_of = {model: key for key, model in own}  # the later wins, as in Plan.e5_own_runs
    for model in rob["decoders"]:
        if model not in experiment_of:
            _fail(
                "encoding_convergence.robustness.decoders",
                model,
                "is not one of E5's own models (solver_comparison.models and the GFE models of "
                "learning_curves.models): no run of it has a decoder to sweep",
                f"models of {sorted(experiment_of)}",
            )
        key = experiment_of[model]
        trained = cfg["solver_comparison"]["seeds"] if key.startswith("solver_comparison") else cfg["seeds"]
        missing = [seed for seed in rob["seeds"] if seed not in trained]
        if missing:
            where = "solver_comparison.seeds" if key.startswith("solver_comparison") else "seeds"
            _fail(
                "encoding_convergence.robustness.seeds",
                missing[0],
                f"is not a seed of {where}, which trains the {model} decoders the sweep encodes",
                trained,
            )
    amd = [m for m in sorted({*experiment_of, ec["common_model"]}) if cfg["model_settings"][m].get("solver") == "amd"]
    if not amd:
        _fail(
            "encoding_convergence.robustness",
            rob,
            "needs an AMD model among E5's models (its solver options are the configured AMD setting)",
            "an AMD model in learning_curves.models, e.g. gfe_amd",
        )
    if rob["n_images"] > cfg["evaluation"]["test_size"]:
        _fail(
            "encoding_convergence.robustness.n_images",
            rob["n_images"],
            "is larger than evaluation.test_size",
            f"2..{cfg['evaluation']['test_size']}",
        )
    if not any(m >= i for i in rob["dt_init"] for m in rob["dt_max"]):
        _fail(
            "encoding_convergence.robustness.dt_max",
            rob["dt_max"],
            f"has no value >= any dt_init {rob['dt_init']}: every AMD setting would be skipped",
            "at least one dt_max >= a dt_init",
        )


def _check_encode_options(cfg: dict) -> None:
    """Each GFE model's solver options on each dataset, checked by the library with the very
    options a job would pass it (dt_max >= dt_init, 0 < shrink < 1, known option names, a
    differentiable solver for the adjoint, ...)."""
    from gfe import check_gradient_options
    from pipeline.plan import encode_options

    for ds in cfg["datasets"]:
        for model in models_in_use(cfg):
            settings = cfg["model_settings"][model]
            if settings["kind"] != "gfe":
                continue
            options = encode_options(settings, cfg["dataset_settings"][ds])
            try:
                check_gradient_options(settings["gradient"], **options)
            except ValueError as error:
                where = f"model_settings.{model}"
                if settings["solver"] == "amd" and cfg["dataset_settings"][ds].get("amd_options"):
                    where += f".solver_options merged with dataset_settings.{ds}.amd_options"
                raise ConfigError(f"Invalid configuration: {where}: {error}") from None
