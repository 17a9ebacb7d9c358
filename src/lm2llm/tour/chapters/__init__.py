"""One module per section of the guide; each defines `CHAPTER`. Modules are found automatically."""
