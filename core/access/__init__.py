"""Who may do what: named tokens with roles per model (tokens.py, keyring.py), the roles
themselves (roles.py), the one-token setup kept from before (admin_token.py), and the
per-address lockout after repeated failed authentications (limiter.py)."""
