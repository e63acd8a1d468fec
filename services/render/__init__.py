"""The render pool: turns stored articles into pages in the site bucket."""
