"""The finance page's static files (finance.html, finance.js)."""
