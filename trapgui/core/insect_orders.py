"""The insect orders (and the other arthropods that land on a light-trap sheet), offered by
the review relabel picker at rank "order" beside the installed classifier's labels."""

from __future__ import annotations

INSECT_ORDERS: tuple[str, ...] = (
    "Archaeognatha", "Blattodea", "Coleoptera", "Dermaptera", "Diptera", "Embioptera",
    "Ephemeroptera", "Hemiptera", "Hymenoptera", "Lepidoptera", "Mantodea", "Mecoptera",
    "Megaloptera", "Neuroptera", "Odonata", "Orthoptera", "Phasmida", "Plecoptera",
    "Psocodea", "Raphidioptera", "Siphonaptera", "Strepsiptera", "Thysanoptera",
    "Trichoptera", "Zygentoma",
)

# not insects, but on the sheet every night (rank "order" as well)
OTHER_ARTHROPOD_ORDERS: tuple[str, ...] = ("Araneae", "Opiliones", "Acari", "Isopoda")
