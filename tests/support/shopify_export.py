"""The header row of Shopify's customer export (Admin > Customers > Export), as the backfill tests write it."""

from __future__ import annotations

HEADER = (
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
)
HEADER_LINE = ",".join(HEADER) + "\n"
