"""The API's routes, one module per area; each route names its permission (``guard``)."""
