"""The finance page (`/finance`, `lifecycle_shared.pages`): index.html and finance.js, drawing the finance API with
the admin token given in the address's fragment (`#token=...`) or a form."""
