"""The cases a run is made of (layer, claim, head): selection, sharding, xdist scheduling."""
