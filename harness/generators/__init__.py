"""Trained generators: sampling, scoring, export and files made elsewhere.

  sampling      images from a logged generator (grids, strips)
  scoring       FID/KID/IS of a finished run, logged into that run
  files         generator files made outside the harness (.h5, .keras): load and check
  file_scoring  a generator file's FID/KID/IS, as a new run
  export        a logged generator as .h5, .keras or a SavedModel
"""
