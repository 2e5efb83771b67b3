CREATE TABLE products (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    price_cents integer NOT NULL CHECK (price_cents >= 0)
);

INSERT INTO products (name, price_cents) VALUES
    ('Teapot', 2400),
    ('Mug', 900),
    ('Kettle', 3900);
