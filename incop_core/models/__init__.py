"""Networks: the model zoo, the user's own factory, ReLUs mapped to the layers they rectify."""
