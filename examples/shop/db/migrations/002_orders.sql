CREATE TABLE orders (
    id serial PRIMARY KEY,
    product_id integer NOT NULL REFERENCES products (id),
    quantity integer NOT NULL CHECK (quantity > 0),
    status text NOT NULL DEFAULT 'placed' CHECK (status IN ('placed', 'shipped')),
    placed_at timestamptz NOT NULL DEFAULT now(),
    shipped_at timestamptz
);

CREATE INDEX orders_placed ON orders (id) WHERE status = 'placed';
