"""Type stubs of the bench's compiled floors (fastxent.bench._floors, built
from _floors.pyx): the multithreaded copy and read the memory floors time."""

import numpy as np
from numpy.typing import NDArray

CAN_STREAM: bool

def copy_floor(src: NDArray[np.uint8], dst: NDArray[np.uint8], n_threads: int,
               stream: bool, pieces: int = 0) -> None: ...
def read_floor(src: NDArray[np.uint64], n_threads: int) -> int: ...
