"""`--refresh-catalog`: rewrite the `offeredIn` lists of catalog/openai-models.yaml from the live models list.

Only the regions asked about change: each is added to or removed from every model/version/SKU list
as the region's live answer says. Other regions, lifecycle fields and comments stay as reviewed
(ruamel.yaml round-trip). Models the live answer lists but the catalogue does not are left out: adding
a model to the catalogue is a reviewed change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from components.config import OPENAI_DEPLOYMENT_SKUS, PROJECT, Section
from tools.preflight.facts import OfferedModel

MODELS_FILE = "openai-models.yaml"


def stack_regions(values: Mapping[str, Any]) -> list[str]:
    """The stack's main region and its OpenAI instances' regions, from the raw config values.

    Raw, not validated: the validation checks the config against this very catalogue, which may be
    what is out of date.
    """
    root = Section(PROJECT, values)
    instances = root.section("openai").items("instances")
    regions = [root.string("location"), *(Section("instance", raw).string("region") for raw in instances)]
    return list(dict.fromkeys(regions))


def _round_trip_yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # the region lists stay on one line each
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Written `null` in the file; ruamel.yaml would write nothing.
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _offering_skus(live: Sequence[OfferedModel], name: str, version: str) -> set[str]:
    """The catalogue's SKU names under which `live` offers this model version."""
    spelled = {sku.lower(): sku for sku in OPENAI_DEPLOYMENT_SKUS}
    return {
        spelled[sku.name.lower()]
        for model in live
        if (model.name, model.version) == (name, version)
        for sku in model.skus
        if sku.name.lower() in spelled
    }


def _flow_style(node: CommentedMap | CommentedSeq) -> CommentedMap | CommentedSeq:
    node.fa.set_flow_style()  # as the file writes them: `GlobalStandard: [eastus, westus]`
    return node


def _apply(offered_in: Any, region: str, offering: set[str]) -> list[str]:
    """Adds/removes `region` in each SKU's list of one version; returns what changed (`+GlobalStandard`)."""
    changes = []
    for sku in OPENAI_DEPLOYMENT_SKUS:
        regions = offered_in.get(sku)
        listed = regions is not None and region in regions
        if sku in offering and not listed:
            if regions is None:
                offered_in[sku] = _flow_style(CommentedSeq([region]))
            else:
                regions.insert(sum(r < region for r in regions), region)  # the lists are alphabetical
            changes.append(f"+{sku}")
        elif listed and sku not in offering:
            regions.remove(region)
            if not regions:
                del offered_in[sku]  # the file omits SKUs with no region
            changes.append(f"-{sku}")
    return changes


def refresh_offered_in(catalog_dir: Path, live_by_region: Mapping[str, Sequence[OfferedModel]]) -> list[str]:
    """Rewrites the file; returns one line per changed model version and region."""
    path = catalog_dir / MODELS_FILE
    yaml = _round_trip_yaml()
    document = yaml.load(path.read_text())
    changes = []
    for name, model in document["models"].items():
        for version, entry in model["versions"].items():
            for region, live in live_by_region.items():
                offered_in = entry.setdefault("offeredIn", _flow_style(CommentedMap()))
                changed = _apply(offered_in, region, _offering_skus(live, name, str(version)))
                if changed:
                    changes.append(f"{name} {version} in {region}: {' '.join(changed)}")
    if changes:
        with path.open("w") as file:
            yaml.dump(document, file)
    return changes
