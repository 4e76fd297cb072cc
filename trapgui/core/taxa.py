"""From a model's (or a reviewer's) label to a taxon that Darwin Core and Camtrap DP accept.

Labels come in three kinds: the moth / non-moth filter's ``moth`` and ``nonmoth``, insect
orders (``Lepidoptera``), and species (``Noctua pronuba``); reviewers add morphospecies
(``Noctuidae sp. A``). Some older species maps carry numeric ids instead of names. The raw
label always travels too (``verbatimIdentification``), so nothing is lost by the mapping.

Choices, documented in docs/exports.md:
- ``moth`` is the order Lepidoptera.
- ``nonmoth``, and individuals without a label above the threshold, are Arthropoda (phylum):
  what lands on a lit sheet is nearly always an arthropod, but not always an insect (spiders,
  harvestmen), so the phylum is the deepest rank that is never wrong.
- ``Genus sp.`` / ``Family sp. A`` is the higher taxon with the rest as the qualifier.
- A label made only of digits is not a name: no scientific name, the label stays verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

UNIDENTIFIED = "Arthropoda"  # the taxon of an individual without an accepted label
_BINARY = {"moth": ("Lepidoptera", "order"), "nonmoth": (UNIDENTIFIED, "phylum"),
           "non-moth": (UNIDENTIFIED, "phylum")}
_RANKS = {"species": "species", "order": "order", "binary": None}
_SP_RE = re.compile(r"^([A-Z][a-z]+)\s+(spp?\.?(?:\s+.*)?)$")
_ORDER_SUFFIX = "ptera"  # most insect orders; others are recognised by the order model's rank


@dataclass(frozen=True, slots=True)
class Taxon:
    scientific_name: str | None  # None: the label is not a name (a numeric id)
    taxon_rank: str | None  # Darwin Core taxonRank: species, genus, family, order, phylum...
    qualifier: str | None = None  # identificationQualifier ("sp. A")
    verbatim: str | None = None  # the label as the model or the reviewer gave it

    @property
    def kingdom(self) -> str:
        return "Animalia"


@lru_cache(maxsize=4096)  # pure, and exports ask for the same few labels 100,000 times
def taxon_for(label: str | None, rank: str | None) -> Taxon:
    """The taxon for ``label`` of model rank ``rank`` (binary / order / species); None label:
    an individual nobody identified (Arthropoda)."""
    if label is None or not label.strip():
        return Taxon(UNIDENTIFIED, "phylum", None, None)
    text = label.strip()
    if rank == "binary" or text.lower() in _BINARY:
        name, taxon_rank = _BINARY.get(text.lower(), (UNIDENTIFIED, "phylum"))
        return Taxon(name, taxon_rank, None, text)
    if text.isdigit():
        return Taxon(None, None, None, text)
    m = _SP_RE.match(text)
    if m:
        higher = m.group(1)
        return Taxon(higher, _higher_rank(higher), m.group(2).strip(), text)
    if rank == "order":
        return Taxon(text, "order", None, text)
    if rank == "species":
        words = text.split()
        return Taxon(text, "species" if len(words) >= 2 else _higher_rank(text), None, text)
    # a label without a model rank (a reviewer's free label)
    words = text.split()
    return Taxon(text, "species" if len(words) == 2 and words[1].islower()
                 else _higher_rank(text) if len(words) == 1 else None, None, text)


def _higher_rank(name: str) -> str | None:
    """A one-word name's rank from its ending where zoological nomenclature fixes it."""
    if name.endswith("idae"):
        return "family"
    if name.endswith("inae"):
        return "subfamily"
    if name.endswith("ini"):
        return "tribe"
    if name.endswith("oidea"):
        return "superfamily"
    if name.endswith(_ORDER_SUFFIX):
        return "order"
    return "genus" if name[:1].isupper() else None
