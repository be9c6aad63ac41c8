"""commerce-customer-sync: keeps Dynamics 365 Commerce customers in step with a marketing system."""

__version__ = "0.1.0"
