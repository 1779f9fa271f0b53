from modelswap.api.http.app import ROUTES
from modelswap.api.http.openapi import OPENAPI


def test_the_openapi_document_describes_every_route_and_nothing_else() -> None:
    documented = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    served = {(r.path, m.lower()) for r in ROUTES for m in (r.methods or ()) if m != "HEAD"}
    assert served - {("/openapi.json", "get")} == documented


def test_admin_operations_declare_the_bearer_scheme() -> None:
    ops = OPENAPI["paths"]
    assert ops["/v1/models/{model}/rollback"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in ops["/v1/models/{model}/predict"]["post"]
