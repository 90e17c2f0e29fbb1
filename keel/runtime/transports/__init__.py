"""How ``keel.Client`` reaches runs: the store itself (``store``), or a keel server's
HTTP API (``http``). Both give the same values (``base``), so code written against the
client works on either."""
