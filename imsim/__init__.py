"""The project's namespace for what sits on top of the design card's packages: the command line
(`imsim.cli`, `imsim.commands`), the search app (`imsim.app`), Ray scale-out (`imsim.scaleout`) and the
benchmarks (`imsim.benchmarks`)."""
