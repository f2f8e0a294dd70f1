// squtun-attack: the hostile-network test tool (being written).
print("squtun-attack")
