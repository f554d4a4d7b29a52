"""Our own management resources under ``/v1/connect/…``, one module per noun, for what
Vercel's API has no endpoint for. Every view is a ``ManagementView``: a team API token, its
role checked with the admin's rule (``connect.permissions``), its own rate-limit bucket."""
