"""Export of runs to the files each community reads (NWB, EXtra-data HDF5, NeXus-like HDF5,
MCAP), and import of MCAP and EXDF files as runs. Reads only through `store.reader`."""
