# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Per-SKU figures of a migration report: users often hold several SKUs, some migrated, some left direct.

``SkuFigures`` counts the report's outcome rows (one per user and SKU) by SKU part number; ``per_sku_rows``
gives the HTML table's rows. Plain data in, plain data out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PER_SKU_OUTCOMES = ("migrated", "already_inherited", "skipped", "pending", "failed", "unknown", "restored")


class SkuFigures:
    """{part number: {outcome: count}} over the rows added, every outcome present."""

    def __init__(self):
        self.by_sku = {}

    def add(self, row):
        name = row.get("sku_part_number") or row.get("sku_id") or "?"
        counts = self.by_sku.get(name)
        if counts is None:
            counts = self.by_sku[name] = dict((outcome, 0) for outcome in PER_SKU_OUTCOMES)
        outcome = row.get("outcome")
        counts[outcome] = counts.get(outcome, 0) + 1

    def result(self):
        return dict(sorted(self.by_sku.items()))


def per_sku_rows(per_sku):
    """Table rows (SKU, users, migrated, already inherited, skipped, pending, failed, restored)."""
    rows = []
    for name, counts in sorted((per_sku or {}).items()):
        rows.append(
            (
                name,
                sum(counts.values()),
                counts.get("migrated", 0),
                counts.get("already_inherited", 0),
                counts.get("skipped", 0),
                counts.get("pending", 0),
                counts.get("failed", 0) + counts.get("unknown", 0),
                counts.get("restored", 0),
            )
        )
    return rows


PER_SKU_HEADERS = ("SKU", "users", "migrated", "already inherited", "skipped", "pending", "failed", "restored")


def per_sku_html(per_sku, table):
    """The per-SKU section ('' when the report names fewer than two SKUs); ``table`` is the report's."""
    if not per_sku or len(per_sku) < 2:
        return ""
    return "<h2>Per SKU</h2>" + table(PER_SKU_HEADERS, per_sku_rows(per_sku), "per-sku")
